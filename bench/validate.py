"""Benchmark signature-repository validation and release builds against compiling the same rules.

A generated repository of N rules (default 5,000, house conventions, 10 per file, each with
a positive sample in a malicious corpus) is timed through the real command line:

1. ``workbench validate --no-corpus`` on the whole tree (what CI runs, minus the corpus scan);
2. ``workbench validate --changed-since HEAD`` after a one-rule change (the pre-commit hook,
   corpus checks included);
3. the release build: the bundle of HEAD prepared from git and written (compile, self-test,
   pack); and, for the record, the whole ``workbench release`` (full validation with the
   corpus scan and budgets, changelog commit, tag, bundle).

Peers, timed in the same run on the same files: Debian's ``yarac`` compiling the ruleset to a
file (the CLI compiler), and a bare ``yara.compile`` of the same files in yara-python.

With ``--real`` (or ``--ruleset PATH``): a signature repository holding a real public
ruleset (default the ReversingLabs rules in ../shared/rulesets, copied into the bench's
work folder) and a clean corpus of ``--clean-mb`` MB of system files; timed: the full
``workbench validate`` (corpus scan and per-rule budgets included, progress lines read
from stderr) and ``--changed-since HEAD`` after a one-rule change (``--rounds`` times,
alternating with ``yarac``), against ``yarac``.

Usage: .venv/bin/python bench/validate.py [--rules 5000] [--keep] [--real [--clean-mb 100]]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import git
import yara
from realset import (
    DEFAULT_RULESET,
    WORKBENCH,
    alternate,
    bytecode_env,
    clean_corpus,
    ensure_yara,
    load,
    median,
    rule_files,
    run,
)

from workbench.release.build import prepare_commit
from workbench.release.signature_repository import SignatureRepository
from workbench.rules.parse import parse_text

HOUSE = Path(__file__).resolve().parents[1] / "signatures"
PER_FILE = 10
PER_SAMPLE = 100
WORDS = ["invoice", "payload", "loader", "beacon", "config", "update", "stage", "gate"]
CLI = [sys.executable, "-c", "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"]


def rule_text(i: int, sample_sha: str, fingerprint: str, *, version: int = 1, extra: str = "") -> str:
    group = i // PER_SAMPLE
    word = WORDS[i % len(WORDS)]
    return f"""rule MAL_Bench{group}_Rule{i}_Gen {{
    meta:
        id = "{uuid.uuid5(uuid.NAMESPACE_OID, str(i))}"
        fingerprint = "{fingerprint}"
        version = {version}
        date = "2026-11-01"
        modified = "2026-11-0{version}"
        status = "RELEASED"
        author = "bench"
        description = "generated benchmark rule {i}"
        category = "MAL"
        family = "Bench{group}"
        hash = "{sample_sha}"
        source = "{sample_sha}"
    strings:
        $x1 = "WBBENCH-MARK-{i:06d}"
        $s1 = "{word}-{i:06d}.bench.example{extra}"
    condition:
        filesize < 1MB and ($x1 or $s1)
}}
"""


def with_fingerprints(text: str) -> str:
    """Fill each rule's fingerprint meta with its true value (the parser computes it)."""
    for rule in parse_text(text).rules:
        start = text.index(f"rule {rule.name} ")
        text = text[:start] + text[start:].replace("fingerprint = \"" + "0" * 64 + "\"",
                                                   f'fingerprint = "{rule.fingerprint}"', 1)
    return text


def generate(root: Path, n: int) -> None:
    rng = random.Random(5)
    shutil.copy(HOUSE / "workbench.toml", root / "workbench.toml")
    samples = []
    for g in range((n + PER_SAMPLE - 1) // PER_SAMPLE):
        parts = [rng.randbytes(40)]
        for i in range(g * PER_SAMPLE, min(n, (g + 1) * PER_SAMPLE)):
            parts += [f"WBBENCH-MARK-{i:06d}".encode(), rng.randbytes(40)]
        samples.append(b"".join(parts))
    for folder, files in (("malicious", samples), ("clean", [rng.randbytes(16_384) for _ in range(20)])):
        (root / "corpora" / folder).mkdir(parents=True)
        for k, data in enumerate(files):
            (root / "corpora" / folder / f"{folder}-{k:03d}.bin").write_bytes(data)
    shas = [hashlib.sha256(s).hexdigest() for s in samples]
    (root / "rules" / "gen").mkdir(parents=True)
    for f in range((n + PER_FILE - 1) // PER_FILE):
        rules = [rule_text(i, shas[i // PER_SAMPLE], "0" * 64) for i in range(f * PER_FILE, min(n, (f + 1) * PER_FILE))]
        (root / "rules" / "gen" / f"g{f:04d}.yar").write_text(with_fingerprints("\n".join(rules)))


def change_one_rule(root: Path, i: int) -> None:
    path = root / "rules" / "gen" / f"g{i // PER_FILE:04d}.yar"
    rules = parse_text(path.read_text()).rules
    texts = []
    for r in rules:
        if r.name == f"MAL_Bench{i // PER_SAMPLE}_Rule{i}_Gen":
            sha = str(r.meta_value("hash"))
            texts.append(with_fingerprints(rule_text(i, sha, "0" * 64, version=2, extra="/v2")))
        else:
            texts.append(r.text + "\n")
    path.write_text("\n".join(texts))


def timed(cmd: list[str], *, expect: int = 0) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != expect:
        sys.exit(f"{' '.join(cmd[3:])} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return took


def real_validate(args: argparse.Namespace) -> None:
    ensure_yara()
    base = Path(__file__).resolve().parent / "out"
    base.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="validate-real-", dir=base))
    try:
        root, home = tmp / "signatures", tmp / "home"
        shutil.copytree(args.ruleset or DEFAULT_RULESET, root / "rules" / "vendor")
        shutil.copy(HOUSE / "workbench.toml", root / "workbench.toml")
        (root / "corpora" / "malicious").mkdir(parents=True)
        size = clean_corpus(root / "corpora" / "clean", args.clean_mb)
        repo = git.Repo.init(root)
        with repo.config_writer() as cw:
            cw.set_value("user", "name", "bench")
            cw.set_value("user", "email", "bench@example.invalid")
        (root / ".gitignore").write_text("corpora/\n")      # the corpus lives beside the rules, untracked
        repo.git.add("rules", "workbench.toml", ".gitignore")
        repo.index.commit("vendor rules")
        files = rule_files(root / "rules")
        wb = [*WORKBENCH, "--home", str(home), "--signatures", str(root)]
        run([*WORKBENCH, "--version"])
        print(f"{len(files)} rule files, clean corpus {size / 1e6:.0f} MB; {load()}")
        t0 = time.perf_counter()
        proc = subprocess.Popen([*wb, "validate", "--format", "json"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=bytecode_env())
        assert proc.stderr is not None
        for line in proc.stderr:                 # progress arrives while it runs, not a terminal
            print(f"  [{time.perf_counter() - t0:6.1f} s] {line.rstrip()}")
        proc.wait()
        full = time.perf_counter() - t0
        edit = files[len(files) // 2]
        text = edit.read_text()
        at = text.index("condition:")
        eol = text.index("\n", at)
        edit.write_text(text[:eol + 1] + "        filesize > 16 and\n" + text[eol + 1:])
        print(f"validate (full, corpus and budgets): {full:.1f} s (target < 60 s), exit {proc.returncode}")
        times = alternate(args.rounds, {
            "yarac": lambda: run(["yarac", *map(str, files), str(tmp / "out.yarc")])[0],
            "changed": lambda: run([*wb, "validate", "--changed-since", "HEAD"], ok=(0, 1))[0]})
        changed, peer = median(times["changed"]), median(times["yarac"])
        print(f"validate --changed-since HEAD (one rule): {', '.join(f'{t:.2f}' for t in times['changed'])} s, "
              f"median {changed:.2f} s (target < 5 s)")
        print(f"peer: yarac {', '.join(f'{t:.2f}' for t in times['yarac'])} s, median {peer:.2f} s; "
              f"full = {full / peer:.0f}x, changed = {changed / peer:.1f}x; {load()}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=5000)
    ap.add_argument("--keep", action="store_true", help="keep the generated repository under bench/out/")
    ap.add_argument("--real", action="store_true", help="the real ruleset instead of generated rules")
    ap.add_argument("--ruleset", type=Path, default=None)
    ap.add_argument("--clean-mb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="--real: changed-since runs, alternating with yarac")
    args = ap.parse_args()
    if args.real or args.ruleset:
        real_validate(args)
        return
    yarac = shutil.which("yarac")
    base = Path(__file__).resolve().parent / "out"
    base.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="validate-", dir=base))
    try:
        root, home = tmp / "signatures", tmp / "home"
        root.mkdir()
        t0 = time.perf_counter()
        generate(root, args.rules)
        repo = git.Repo.init(root)
        with repo.config_writer() as cw:
            cw.set_value("user", "name", "bench")
            cw.set_value("user", "email", "bench@example.invalid")
        repo.git.add(A=True)
        repo.index.commit("generated")
        files = sorted(str(p) for p in (root / "rules").rglob("*.yar"))
        print(f"generated {args.rules} rules in {len(files)} files in {time.perf_counter() - t0:.1f} s")
        wb = [*CLI, "--home", str(home), "--signatures", str(root)]

        full = timed([*wb, "validate", "--no-corpus"])
        change_one_rule(root, args.rules // 2)
        changed = timed([*wb, "validate", "--changed-since", "HEAD"])
        repo.git.add(A=True)
        repo.index.commit("one rule changed")
        t0 = time.perf_counter()
        built = prepare_commit(SignatureRepository(root), "HEAD")
        bundle = built.prepared.write(tmp / "bundle.tar.gz", serial=1, created=repo.head.commit.committed_datetime,
                                      commit=repo.head.commit.hexsha)
        build = time.perf_counter() - t0
        release = timed([*wb, "release", "-m", "bench"])

        t0 = time.perf_counter()
        yara.compile(filepaths={f"f{i}": f for i, f in enumerate(files)})
        yp = time.perf_counter() - t0
        peer = None
        if yarac:
            peer = timed([yarac, *files, str(tmp / "rules.yarc")])
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, "
          f"libyara {yara.YARA_VERSION}")
    print(f"bundle: {bundle.manifest.rule_count} rules, {len(bundle.manifest.selftest)} self-tests, "
          f"{bundle.size / 1024:.0f} KiB")
    rows = [("validate --no-corpus (full)", full, 60), ("validate --changed-since HEAD (1 rule)", changed, 10),
            ("release build (prepare from git + write)", build, 30),
            ("workbench release (validate with corpus, commit, tag, build)", release, None)]
    ref_name, ref = ("yarac", peer) if peer else ("yara.compile", yp)
    print(f"{'':58} {'seconds':>8} {'target':>7} {'x ' + ref_name:>12}")
    for label, secs, target in rows:
        mark = "" if target is None else (f"< {target}" if secs < target else f"MISSED {target}")
        print(f"{label:58} {secs:8.2f} {mark:>7} {secs / ref:11.1f}x")
    if peer:
        print(f"{'peer: yarac (Debian) compiling the same files':58} {peer:8.2f}")
    print(f"{'peer: yara-python compile of the same files':58} {yp:8.2f}")


if __name__ == "__main__":
    main()
