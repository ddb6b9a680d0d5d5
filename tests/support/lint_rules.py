"""A clean house-style rule built in code, for the linter, formatter and rule CLI tests."""

from __future__ import annotations

from workbench.rules.parse import parse_text

SAMPLE_SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"   # EICAR
MESSAGE_SHA = "a" * 64


def house_rule(name: str = "MAL_Demo_Loader_Exe", *, strings: str = '$x1 = "WBDEMO-LOADER-CFG"',
               condition: str = "uint16(0) == 0x5A4D and filesize < 2MB and 1 of ($x*)",
               imports: str = "", extra_meta: str = "", category: str = "MAL", family: str = "Demo",
               status: str = "TESTING") -> str:
    """A rule that lints clean unless the arguments make it break a check."""
    body = f"""{imports}
rule {name} {{
  meta:
    id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    fingerprint = "FP"
    version = 1
    date = "2026-01-02"
    modified = "2026-01-03"
    status = "{status}"
    author = "tester"
    description = "demo loader"
    category = "{category}"
    family = "{family}"
    hash = "{SAMPLE_SHA}"
    source = "{MESSAGE_SHA}"{extra_meta}
  strings:
    {strings}
  condition:
    {condition}
}}
"""
    fp = parse_text(body.replace('"FP"', '"x"')).rules[0].fingerprint
    return body.replace('"FP"', f'"{fp}"')
