"""Draft a YARA rule from samples and chosen strings, following the house conventions."""

from __future__ import annotations

import datetime as dt
import importlib
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import yara
import yara_x

from workbench.dissect.strings import extract_strings
from workbench.errors import Kind, WorkbenchError
from workbench.quarantine.index import UnknownId
from workbench.quarantine.object_store import ObjectNotFound, is_sha256
from workbench.quarantine.service import Quarantine
from workbench.rules.findings import Finding
from workbench.rules.fmt import format_text
from workbench.rules.goodware import GoodwareDB
from workbench.rules.lint import lint_text
from workbench.rules.parse import RuleString, compute_fingerprint, meta_literal, yara_text_literal
from workbench.rules.policy import Policy, name_part
from workbench.rules.suggest import rank_strings
from workbench.workspace import Workspace, current_actor

# Detected type -> (cheap header check, name detail, label)
HEADER_CHECKS: dict[str, tuple[str | None, str]] = {
    "pe": ("uint16(0) == 0x5A4D", "Exe"),
    "elf": ("uint32(0) == 0x464C457F", "Elf"),
    "ole": ("uint32(0) == 0xE011CFD0", "Doc"),
    "ooxml": ("uint32(0) == 0x04034B50", "Doc"),
    "zip": ("uint32(0) == 0x04034B50", "Zip"),
    "pdf": ("uint32(0) == 0x46445025", "Pdf"),
    "rtf": ("uint32(0) == 0x74725C7B", "Rtf"),
    "script": (None, "Script"),
    "data": (None, "File"),
}
MAX_AUTO_STRONG = 2
MAX_AUTO_STRINGS = 6
AUTO_MIN_SCORE = 5.0


class DraftError(WorkbenchError, ValueError):
    """The draft cannot be made as asked (unknown sample, string not in any sample, bad name)."""

    kind = Kind.INPUT


def detect_type(data: bytes) -> str:
    """The sample's kind for the header check: pe, elf, ole, ooxml, zip, pdf, rtf, script or data."""
    if data[:2] == b"MZ":
        return "pe"
    if data[:4] == b"\x7fELF":
        return "elf"
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "ole"
    if data[:4] == b"PK\x03\x04":
        return "ooxml" if b"[Content_Types].xml" in data[:65536] else "zip"
    if data[:4] == b"%PDF":
        return "pdf"
    if data[:4] == b"{\\rt":
        return "rtf"
    head = data[:4096]
    if head and sum(32 <= b < 127 or b in (9, 10, 13) for b in head) / len(head) > 0.95:
        return "script"
    return "data"


@dataclass
class Sample:
    sha256: str
    data: bytes = field(repr=False, metadata={"internal": True})
    kind: str = ""
    source: str = ""            # the quarantine message holding the sample, if known

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = detect_type(self.data)


@dataclass
class DraftString:
    identifier: str
    kind: str                   # "text" or "hex"
    value: str                  # YARA source of the value
    modifiers: list[str]
    found_in: list[str]         # sample hashes containing it


@dataclass
class Draft:
    """A drafted rule and what the drafter checked about it."""

    name: str
    text: str
    strings: list[DraftString]
    samples: list[str]
    matched: list[str]          # samples the compiled rule matches
    findings: list[Finding]     # lint findings on the draft (empty when it lints clean)
    notes: list[str] = field(default_factory=list)


_HEX_PLAIN = re.compile(r"^[0-9A-Fa-f\s]+$")


def normalise_hex(pattern: str) -> str:
    """A hex pattern as ``{ 4D 5A ?? }``; accepts ``4d5a``, ``4D 5A ?? [2-4]`` or ``{...}``."""
    body = pattern.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1].strip()
    if not body:
        raise DraftError("empty hex pattern")
    if _HEX_PLAIN.match(body):
        digits = re.sub(r"\s+", "", body)
        if len(digits) % 2:
            raise DraftError(f"hex pattern {pattern!r} has an odd number of digits")
        body = " ".join(digits[i:i + 2] for i in range(0, len(digits), 2))
    value = "{ " + body.upper() + " }"
    try:
        yara.compile(source=f"rule h {{ strings: $h = {value} condition: $h }}")
    except yara.Error as exc:
        raise DraftError(f"hex pattern {pattern!r} is not valid YARA: {exc}") from exc
    return value


def _filesize_bound(sizes: Iterable[int]) -> str:
    limit = max(max(sizes, default=0) * 2, 1024)
    if limit < 1024 * 1024:
        return f"filesize < {math.ceil(limit / 1024)}KB"
    return f"filesize < {math.ceil(limit / (1024 * 1024))}MB"


def rule_name(category: str, family: str, detail: str) -> str:
    """``<CATEGORY>_<Family>_<Detail>``, e.g. MAL_Emotet_Loader_Doc."""
    fam = name_part(family) or "Unknown"
    if fam[0].isdigit():
        fam = "F" + fam
    parts = [category.upper(), fam] + [name_part(p) for p in detail.split("_") if name_part(p)]
    return "_".join(parts)


def _text_forms(text: str) -> dict[str, bytes]:
    raw = text.encode("utf-8")
    return {"ascii": raw, "wide": text.encode("utf-16le")}


def _string_for_text(identifier: str, text: str, samples: Sequence[Sample]) -> DraftString:
    forms = _text_forms(text)
    seen = {form: [s.sha256 for s in samples if needle in s.data] for form, needle in forms.items()}
    modifiers = [form for form in ("ascii", "wide") if seen[form]]
    found = sorted({sha for shas in seen.values() for sha in shas})
    if not modifiers:
        raise DraftError(f"string {text!r} is in none of the samples (as ASCII or UTF-16LE)")
    if modifiers == ["ascii"]:
        modifiers = []      # ascii alone is YARA's default
    return DraftString(identifier, "text", yara_text_literal(forms["ascii"]), modifiers, found)


def _hex_bytes_regex(value: str) -> re.Pattern[bytes] | None:
    """A bytes regex for a hex pattern with ?? wildcards and [n-m] jumps (None if it has more)."""
    parts: list[bytes] = []
    for tok in value[1:-1].split():
        if re.fullmatch(r"[0-9A-F]{2}", tok):
            parts.append(re.escape(bytes([int(tok, 16)])))
        elif tok == "??":
            parts.append(b".")
        elif m := re.fullmatch(r"\[(\d*)-?(\d*)\]", tok):
            lo, hi = m.group(1) or "0", m.group(2)
            parts.append(b".{%s,%s}" % (lo.encode(), hi.encode()) if "-" in tok
                         else b".{%s}" % lo.encode())
        else:
            return None
    return re.compile(b"".join(parts), re.S)


def _string_for_hex(identifier: str, pattern: str, samples: Sequence[Sample]) -> DraftString:
    value = normalise_hex(pattern)
    rx = _hex_bytes_regex(value)
    if rx is None:
        found = [s.sha256 for s in samples]     # alternatives etc.: the compile-and-scan check decides
    else:
        found = [s.sha256 for s in samples if rx.search(s.data)]
        if not found:
            raise DraftError(f"hex pattern {value} is in none of the samples")
    return DraftString(identifier, "hex", value, [], found)


def _auto_strings(samples: Sequence[Sample], goodware: GoodwareDB | None) -> tuple[list[str], list[str]]:
    """(strong, supporting) texts picked from the suggestions of the first sample."""
    candidates, _ = rank_strings(extract_strings(samples[0].data, min_len=6), goodware, limit=40)
    clean = [c for c in candidates if c.goodware_count == 0 and c.score > 0]
    picked = [c for c in clean if c.score >= AUTO_MIN_SCORE] or clean[:3]
    texts = list(dict.fromkeys(c.text for c in picked))
    return texts[:MAX_AUTO_STRONG], texts[MAX_AUTO_STRONG:MAX_AUTO_STRONG + MAX_AUTO_STRINGS]


def build_condition(header: str | None, filesize: str, strong: int, supporting: int,
                    need: int | None = None) -> str:
    """``need``: how many supporting strings must match (default: half of them)."""
    terms = [t for t in (header, filesize) if t]
    n = max(1, min(supporting, need if need is not None else math.ceil(supporting / 2)))
    if strong and supporting:
        terms.append(f"(1 of ($x*) or {n} of ($s*))")
    elif strong:
        terms.append("1 of ($x*)")
    elif supporting:
        terms.append(f"{n} of ($s*)")
    return " and ".join(terms)


def draft_rule(samples: Sequence[Sample], *, strings: Sequence[str] = (), hexes: Sequence[str] = (),
               strong: Sequence[str] = (), name: str | None = None, category: str = "MAL",
               family: str = "Unknown", detail: str | None = None, description: str | None = None,
               author: str | None = None, today: dt.date | None = None, rule_id: str | None = None,
               policy: Policy | None = None, goodware: GoodwareDB | None = None) -> str:
    """The text of a drafted rule (formatted); see ``draft`` for the checked result."""
    return draft(samples, strings=strings, hexes=hexes, strong=strong, name=name, category=category,
                 family=family, detail=detail, description=description, author=author, today=today,
                 rule_id=rule_id, policy=policy, goodware=goodware).text


def draft(samples: Sequence[Sample], *, strings: Sequence[str] = (), hexes: Sequence[str] = (),
          strong: Sequence[str] = (), name: str | None = None, category: str = "MAL",
          family: str = "Unknown", detail: str | None = None, description: str | None = None,
          author: str | None = None, today: dt.date | None = None, rule_id: str | None = None,
          policy: Policy | None = None, goodware: GoodwareDB | None = None,
          need: int | None = None) -> Draft:
    """Draft a rule matching ``samples``.

    ``strong`` strings each suffice alone (``$x*``); ``strings`` and ``hexes`` are supporting
    (``$s*``, ``need`` of them needed, half by default). With none given, the best suggested strings of the first
    sample are used. The result is compiled with both engines, scanned against every sample
    and linted with ``policy``.
    """
    if not samples:
        raise DraftError("a draft needs at least one sample")
    policy = policy or Policy()
    category = category.upper()
    if category not in policy.categories:
        raise DraftError(f"category {category!r} is not one of {', '.join(policy.categories)}")
    notes: list[str] = []
    if not (strings or hexes or strong):
        strong, strings = _auto_strings(samples, goodware)
        if not (strong or strings):
            raise DraftError("no string of the sample scores high enough: choose some with --string / --hex")
        notes.append(f"strings picked from suggestions: {len(strong)} strong, {len(strings)} supporting")

    drafted: list[DraftString] = []
    for i, text in enumerate(dict.fromkeys(strong)):
        drafted.append(_string_for_text(f"$x{i + 1}", text, samples))
    supporting = [("text", t) for t in dict.fromkeys(strings)] + [("hex", h) for h in dict.fromkeys(hexes)]
    for i, (kind, value) in enumerate(supporting):
        ident = f"$s{i + 1}"
        drafted.append(_string_for_text(ident, value, samples) if kind == "text"
                       else _string_for_hex(ident, value, samples))

    kinds = {s.kind for s in samples}
    kind = kinds.pop() if len(kinds) == 1 else "data"
    if len({s.kind for s in samples}) > 1:
        notes.append("samples are of different types: no header check")
    header, type_detail = HEADER_CHECKS.get(kind, (None, "File"))
    n_strong = sum(1 for d in drafted if d.identifier.startswith("$x"))
    condition = build_condition(header, _filesize_bound(len(s.data) for s in samples),
                                n_strong, len(drafted) - n_strong, need)

    if name is not None and family == "Unknown":
        # MAL_WbStealer_Strings_Exe names its family: keep the metadata in step with it
        parts = name.split("_")
        if len(parts) >= 3 and parts[0] == category:
            family = parts[1]
    if name is None:
        name = rule_name(category, family, detail or type_detail)
    elif not policy.name_regex.search(name):
        raise DraftError(f"rule name {name!r} breaks the naming convention "
                         f"(<CATEGORY>_<Family>_<Detail>, {policy.name_pattern})")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
        raise DraftError(f"{name!r} is not a valid YARA rule name")

    fingerprint = compute_fingerprint(
        [RuleString(d.identifier, d.kind, d.value, d.modifiers, 0) for d in drafted], condition)  # type: ignore[arg-type]
    stamp = (today or dt.date.today()).strftime(policy.date_format)
    sources = [s.source for s in samples if s.source]
    if not sources:
        notes.append(f"no quarantine message is known to hold {samples[0].sha256[:12]}…: "
                     "source is the sample itself; pass --source to name the message")
    meta: list[tuple[str, str | int]] = [
        ("id", rule_id or str(uuid.uuid4())),
        ("fingerprint", fingerprint),
        ("version", 1),
        ("date", stamp),
        ("modified", stamp),
        ("status", "TESTING"),
        ("author", author or policy.default_author or current_actor()),
        ("description", description or f"{name_part(family) or 'Unknown'} {type_detail.lower()} "
                                        f"({category}), drafted from {len(samples)} sample(s)"),
        ("category", category),
        ("family", family),
    ]
    meta += [("hash", s.sha256) for s in samples]
    meta.append(("source", sources[0] if sources else samples[0].sha256))

    lines = [f"rule {name} {{", "  meta:"]
    for key, meta_value in meta:
        lines.append(f"    {key} = {meta_value}" if isinstance(meta_value, int)
                     else f"    {key} = {meta_literal(meta_value)}")
    lines.append("  strings:")
    for d in drafted:
        lines.append(f"    {d.identifier} = {d.value}" + (" " + " ".join(d.modifiers) if d.modifiers else ""))
    lines += ["  condition:", f"    {condition}", "}"]
    text = format_text("\n".join(lines) + "\n")

    matched = _check_compiles_and_matches(text, samples)
    missed = [s.sha256 for s in samples if s.sha256 not in matched]
    if missed:
        notes.append(f"the draft does not match {len(missed)} sample(s): "
                     + ", ".join(m[:12] + "…" for m in missed) + "; add strings they contain")
    report = lint_text(text, None, policy)
    return Draft(name, text, drafted, [s.sha256 for s in samples], matched, report.findings, notes)


def _check_compiles_and_matches(text: str, samples: Sequence[Sample]) -> list[str]:
    try:
        rules = yara.compile(source=text)
        yara_x.compile(text)
    except (yara.Error, yara_x.CompileError) as exc:     # a bug in the drafter, not the user's input
        raise RuntimeError(f"drafted rule does not compile: {exc}\n{text}") from exc
    return [s.sha256 for s in samples if rules.match(data=s.data)]


# -- reading samples from the workspace -------------------------------------------------------


def find_source_message(workspace: Workspace, q: Quarantine, sha256: str) -> str:
    """The quarantine message holding ``sha256``: the dissect catalog's parents, else itself
    when the sample is an indexed message; "" when unknown."""
    try:
        catalog = importlib.import_module("workbench.dissect.catalog")
    except ModuleNotFoundError:
        catalog = None
    finder = getattr(catalog, "find_parents", None)
    if finder is not None:
        try:
            parents = list(finder(workspace, sha256) or [])
        except Exception:       # the catalog is optional here; a broken one must not stop drafting
            parents = []
        for parent in parents:
            sha = parent if isinstance(parent, str) else getattr(parent, "message_sha256", None)
            if isinstance(sha, str) and is_sha256(sha):
                return sha
    try:
        q.index.get(sha256)
    except UnknownId:
        return ""
    return sha256


def load_samples(workspace: Workspace, ids: Sequence[str], *, source: str | None = None) -> list[Sample]:
    """Samples from the quarantine store by sha256, or a unique prefix of a message's or a
    stored artifact's id (the short ids the dissection tree prints)."""
    from workbench.quarantine.targets import TargetNotFound, resolve_target

    q = Quarantine(workspace.quarantine)
    try:
        samples = []
        for ident in ids:
            try:
                sha = resolve_target(q, ident).sha256
                data = q.store.read(sha)
            except TargetNotFound as exc:
                raise DraftError(str(exc), kind=Kind.NOT_FOUND) from exc
            except ObjectNotFound as exc:
                raise DraftError(f"{sha}: no such object in the quarantine store",
                                 kind=Kind.NOT_FOUND) from exc
            samples.append(Sample(sha, data, source=source or find_source_message(workspace, q, sha)))
        return samples
    finally:
        q.close()
