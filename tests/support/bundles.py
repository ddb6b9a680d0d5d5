"""Release bundles built in code for the distribution tests (EICAR and GTUBE stand in for threats)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from workbench.release.bundle import (
    ManifestRule,
    PreparedBundle,
    SelfTestVector,
    SourceEntry,
    bundle_name,
    prepare_bundle,
)
from workbench.samples.mail import EICAR, GTUBE

RULES = {
    "eicar_test_file": b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE",
    "gtube_test_mail": b"GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL",
}
SAMPLES = {"eicar_test_file": EICAR, "gtube_test_mail": GTUBE}


def _rule(name: str, serial: int) -> tuple[str, str]:
    fingerprint = hashlib.sha256(f"{name}:{serial}".encode()).hexdigest()[:32]
    pattern = RULES[name].decode()
    source = (f"rule {name}\n{{\n    meta:\n        fingerprint = \"{fingerprint}\"\n"
              f"        serial = {serial}\n    strings:\n        $a = \"{pattern}\"\n"
              f"    condition:\n        $a\n}}\n")
    return source, fingerprint


def prepared(serial: int, names: tuple[str, ...] = ("eicar_test_file",)) -> PreparedBundle:
    sources, rules, samples, expected = {}, [], {}, {}
    for name in names:
        source, fingerprint = _rule(name, serial)
        member = f"rules/test/{name}.yar"
        sources[member] = source.encode()
        rules.append(ManifestRule(name=name, namespace="test", fingerprint=fingerprint,
                                  status="RELEASED", file=member))
        samples[name] = SAMPLES[name]
        expected[name] = [name]
    return prepare_bundle(sources=sources,
                          entrypoints=[SourceEntry(path=m, namespace="test") for m in sources],
                          rules=rules, externals={}, samples=samples, expected=expected)


def make_bundle(folder: Path, serial: int, names: tuple[str, ...] = ("eicar_test_file",)) -> Path:
    """A valid ``signatures-<serial>.tar.gz`` whose rules differ per serial."""
    out = Path(folder) / bundle_name(serial)
    prepared(serial, names).write(out, serial=serial, created=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                                  commit=f"{serial:040x}")
    return out


def make_failing_selftest_bundle(folder: Path, serial: int) -> Path:
    """Signed, well-formed, but its self-test input is benign: loading it must fail."""
    good = prepared(serial)
    broken = PreparedBundle(
        sources=good.sources, entrypoints=good.entrypoints, rules=good.rules,
        externals=good.externals, compiled=good.compiled,
        samples={"selftest/benign": b"nothing to see here"},
        selftest=(SelfTestVector(file="selftest/benign", rules=("eicar_test_file",)),))
    out = Path(folder) / bundle_name(serial)
    broken.write(out, serial=serial, created=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                 commit=f"{serial:040x}")
    return out
