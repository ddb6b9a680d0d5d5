"""What the UI tests' generated quarantine holds, and the rules they test with."""

from __future__ import annotations

import hashlib

from workbench.samples.mail import EICAR

MESSAGES = 36
MARKER = "WBTEST-LOADER-CONFIG-1234"

ABSENT = "a" * 64
QUOTED = b"Our notes quote the test string: EICAR-STANDARD-ANTIVIRUS-TEST-FILE, harmless.\n"
SLOW_RULE = ("rule TEST_Slow_Loop { condition: for all i in (0..filesize - 1) : "
             "(for all j in (0..3) : (uint8(i + j) < 0x100)) }\n")
RULE = f'''rule TEST_Eicar_Marker
{{
    meta:
        hash = "{hashlib.sha256(EICAR).hexdigest()}"
        hash = "{ABSENT}"
    strings:
        $a = "EICAR-STANDARD-ANTIVIRUS"
    condition:
        $a
}}
'''


CLEAN = '''rule TEST_Editor_Sample
{
    meta:
        id = "0b1b3a4e-5f0e-4b6a-9c0d-1e2f3a4b5c6d"
        fingerprint = "0000000000000000000000000000000000000000000000000000000000000000"
        version = 1
        date = "2026-11-02"
        modified = "2026-11-02"
        status = "TESTING"
        author = "tester"
        description = "editor test rule"
        category = "TEST"
        family = "Editor"
        hash = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
        source = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    strings:
        $a = "EICAR-STANDARD-ANTIVIRUS"
    condition:
        $a
}
'''
