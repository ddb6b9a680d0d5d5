"""Sources of a small release bundle built in code (EICAR and GTUBE stand in for threats)."""

from __future__ import annotations

import datetime as dt
import hashlib

from workbench.release.bundle import ManifestRule, PreparedBundle, SourceEntry, prepare_bundle
from workbench.samples.mail import EICAR, GTUBE

CREATED = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
COMMIT = "0123456789abcdef0123456789abcdef01234567"

EICAR_RULE = b'''rule MAL_Eicar_TestFile {
    meta:
        fingerprint = "f1"
        status = "RELEASED"
    strings:
        $e = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
    condition:
        $e
}
'''
GTUBE_RULE = b'''include "common.yar"
rule SPAM_Gtube_TestMail {
    meta:
        fingerprint = "f2"
        status = "NOISY"
    strings:
        $g = "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL"
    condition:
        $g and is_small
}
'''
COMMON = b'''private rule is_small {
    meta:
        fingerprint = "f3"
    condition:
        filesize < 1MB
}
'''


def prepare_sample(**overrides: object) -> PreparedBundle:
    """A bundle of the three sample rules (EICAR, GTUBE, a private helper); ``overrides`` replace arguments."""
    args = dict(
        sources={"rules/malware/eicar.yar": EICAR_RULE, "rules/spam/gtube.yar": GTUBE_RULE,
                 "rules/spam/common.yar": COMMON},
        entrypoints=[SourceEntry("rules/malware/eicar.yar", "malware"),
                     SourceEntry("rules/spam/gtube.yar", "spam")],
        rules=[ManifestRule("MAL_Eicar_TestFile", "malware", "f1", "RELEASED", "rules/malware/eicar.yar"),
               ManifestRule("SPAM_Gtube_TestMail", "spam", "f2", "NOISY", "rules/spam/gtube.yar"),
               ManifestRule("is_small", "spam", "f3", "RELEASED", "rules/spam/common.yar")],
        externals={},
        samples={hashlib.sha256(EICAR).hexdigest(): EICAR, hashlib.sha256(GTUBE).hexdigest(): GTUBE,
                 "clean": b"nothing to see"},
        expected={hashlib.sha256(EICAR).hexdigest(): ["MAL_Eicar_TestFile"]},
    )
    args.update(overrides)
    return prepare_bundle(**args)
