"""The quarantine query language: ``tower:t12 reason:unknown-virus has:attachment invoice``."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.errors import Kind, WorkbenchError
from workbench.humanize import iso_seconds

# field -> (column, match kind). "exact" compares case-insensitively, "like" is a substring.
FIELDS: dict[str, tuple[str, str]] = {
    "tower": ("tower", "exact"),
    "server": ("server", "exact"),
    "reason": ("reason", "exact"),
    "status": ("status", "exact"),
    "from": ("from_addr", "like"),
    "to": ("to_addrs", "like"),
    "subject": ("subject", "like"),
    "name": ("attachment_names", "like"),
    "msgid": ("message_id", "like"),
    "sha": ("sha256", "prefix"),
    "tag": ("tags", "tag"),
    "hash": ("sha256", "hash"),
}
HAS = {
    "attachment": "attachment_count > 0",
    "tag": "tags != ''",
    "tags": "tags != ''",
    "defects": "defect_count > 0",
    "note": "EXISTS (SELECT 1 FROM audit a WHERE a.sha256 = messages.sha256 AND a.note != '')",
}
DATE_FIELDS = {"after": ">=", "before": "<", "since": ">="}
SORT_COLUMNS = {
    "received": "first_seen", "first_seen": "first_seen", "last_seen": "last_seen",
    "tower": "tower", "server": "server", "reason": "reason", "status": "status",
    "from": "from_addr", "subject": "subject", "size": "size", "sightings": "sightings",
    "attachments": "attachment_names", "date": "date",
}
# The triage statuses (the index's too). A negated ``-status:x`` is asked as the other four,
# so the status index answers it instead of a walk over every message.
STATUSES = ("new", "triaged", "drafted", "signed", "dismissed")
KNOWN = sorted([*FIELDS, "has", *DATE_FIELDS, "sort"])


class QueryError(WorkbenchError, ValueError):
    """The query text cannot be understood; the message says where."""

    kind = Kind.USAGE
    topic = "query"


@dataclass(frozen=True)
class TextTerm:
    """A substring term the text index can answer: which clause it is, and its FTS5 query."""

    position: int            # which clause of the query it is
    match: str               # the FTS5 query: a phrase, perhaps limited to one column


@dataclass
class Query:
    text: str = ""
    clauses: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)
    sort: str = "received"
    descending: bool = True
    text_terms: list[TextTerm] = field(default_factory=list)
    _param_counts: list[int] = field(default_factory=list)
    # per clause: SQL ORed with it that the text index must not narrow (the dissected
    # content and the artifact hashes of a free-text term), with its parameters
    _alternatives: dict[int, tuple[str, list[object]]] = field(default_factory=dict)
    _use_index: dict[str, bool] = field(default_factory=dict)   # planned()'s answers, kept

    @property
    def where(self) -> str:
        """Every term as SQL (LIKE for the text terms)."""
        return " AND ".join(self.clauses) if self.clauses else "1"

    def add(self, clause: str, params: list[object], *, text: str = "", negate: bool = False,
            alternative: tuple[str, list[object]] | None = None) -> None:
        """A clause and its parameters; ``text`` (an FTS5 query) marks a term the text index
        can narrow (not a negated one: NOT of a rare word selects nearly every row anyway);
        ``alternative`` is SQL ORed with the clause that the text index must leave alone."""
        if text and not negate:
            self.text_terms.append(TextTerm(len(self.clauses), text))
        if alternative is not None:
            self._alternatives[len(self.clauses)] = alternative
            clause = f"({clause} OR {alternative[0]})"
            params = [*params, *alternative[1]]
        self.clauses.append(f"NOT ({clause})" if negate else clause)
        self.params += params
        self._param_counts.append(len(params))

    def planned(self, use_index: Callable[[str], bool]) -> tuple[str, list[object]]:
        """``where`` and ``params``, with each text term for which ``use_index(match)`` says so
        answered by the text index instead of LIKE. The answers are kept: one query's list,
        count, counts by reason and further pages ask once per term, not each time."""
        for text_term in self.text_terms:
            if text_term.match not in self._use_index:
                self._use_index[text_term.match] = use_index(text_term.match)
        indexed = {t.position: t for t in self.text_terms if self._use_index[t.match]}
        if not indexed:
            return self.where, self.params
        clauses: list[str] = []
        params: list[object] = []
        start = 0
        for position, (clause, count) in enumerate(zip(self.clauses, self._param_counts,
                                                        strict=True)):
            term = indexed.get(position)
            if term is None:
                clauses.append(clause)
                params += self.params[start:start + count]
            elif position in self._alternatives:
                # the header part narrowed by the index; the content part as it is
                alt_sql, alt_params = self._alternatives[position]
                own = count - len(alt_params)
                header = clause[1:-len(f" OR {alt_sql})")]
                clauses.append(f"(({_TEXT_MATCH} AND {header}) OR {alt_sql})")
                params += [term.match, *self.params[start:start + own], *alt_params]
            else:
                # the index narrows, LIKE decides: the trigram index also folds non-ASCII case,
                # which LIKE does not, so alone it would find more than LIKE on some terms
                clauses.append(f"({_TEXT_MATCH} AND {clause})")
                params += [term.match, *self.params[start:start + count]]
            start += count
        return " AND ".join(clauses), params

    @property
    def order_by(self) -> str:
        column = SORT_COLUMNS[self.sort]
        direction = "DESC" if self.descending else "ASC"
        # rowid breaks ties so paging is stable
        return f"{column} {direction}, rowid {direction}"


# The text index (index.py, ``messages_fts``) answers substring terms of three characters
# or more (a trigram tokenizer has nothing to look up for fewer).
TRIGRAM = 3
TEXT_INDEXED = ("subject", "from_addr", "attachment_names")
# Both text indexes share the messages' rowids (index.py), so a match is looked up by rowid:
# asking for their sha256 column reads each matching row's whole stored text, 3-5x slower
# for a word common in dissected content (docs/benchmarks.md, "Search over dissected content").
_TEXT_MATCH = "rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"


def _phrase(value: str) -> str:
    """``value`` as one FTS5 phrase: with the trigram tokenizer, a case-insensitive substring."""
    return '"' + value.replace('"', '""') + '"'


# Free text also reaches what dissection found (index.py ``message_content``: bodies, names
# inside archives, strings of extracted files) and, for a term shaped like a hash, any
# artifact hash (``artifact_hashes``: sha256, sha1, md5, ssdeep, imphash).
_CONTENT_MATCH = "rowid IN (SELECT rowid FROM message_content WHERE message_content MATCH ?)"
_HASH_MATCH = "sha256 IN (SELECT message_sha256 FROM artifact_hashes WHERE value = ?)"
_HEX_HASH = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_SSDEEP = re.compile(r"[0-9]+:[0-9A-Za-z/+]+:[0-9A-Za-z/+]+")
# What a field name looks like: an unknown one is a mistake, not free text. A URL
# (``http://``), a Windows path (``C:\``) or an ssdeep hash has a colon but is free text.
_FIELD_NAME = re.compile(r"[a-z][a-z_-]+")


def hash_value(term: str) -> str | None:
    """``term`` as an artifact hash to look up (hex folded to lower case), or None."""
    if _HEX_HASH.fullmatch(term):
        return term.lower()
    if _SSDEEP.fullmatch(term):
        return term
    return None


def _free_text(query: Query, token: str, *, negate: bool = False) -> None:
    like = _like(token)
    alternatives: list[str] = []
    alt_params: list[object] = []
    if len(token) >= TRIGRAM:
        alternatives.append(_CONTENT_MATCH)
        alt_params.append(_phrase(token))
    if (hashed := hash_value(token)) is not None:
        alternatives.append(_HASH_MATCH)
        alt_params.append(hashed)
    query.add("(subject LIKE ? ESCAPE '\\' OR from_addr LIKE ? ESCAPE '\\' "
              "OR attachment_names LIKE ? ESCAPE '\\')", [like, like, like],
              text=_phrase(token) if len(token) >= TRIGRAM else "", negate=negate,
              alternative=(" OR ".join(alternatives), alt_params) if alternatives else None)


def _unknown(kind: str, value: str, known: list[str] | tuple[str, ...]) -> QueryError:
    close = difflib.get_close_matches(value.lower(), list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return QueryError(f"unknown {kind} {value!r}: {hint}known: {', '.join(known)}")


def _split(text: str) -> list[str]:
    """Words and quoted phrases, like a shell, except that a backslash is an ordinary
    character: Windows paths and registry keys are what analysts search for."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    lexer.commenters = ""
    return list(lexer)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _date(value: str, name: str) -> str:
    try:
        if len(value) == 10:
            parsed = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
    except ValueError:
        raise QueryError(f"{name}: expects a date like 2026-11-26, got {value!r}") from None
    return iso_seconds(parsed, zone=False)


def parse_query(text: str, *, sort: str | None = None, descending: bool | None = None) -> Query:
    """Turn query text into SQL clauses over the ``messages`` table.

    Terms are ANDed. ``-field:value`` negates a term. Anything without a
    ``field:`` prefix is free text, matched against subject, sender and attachment
    names and, for dissected messages, bodies, names inside archives and strings of
    extracted files; a term shaped like a hash also finds the messages that held an
    artifact with that sha256, sha1, md5, ssdeep or imphash. An unknown field or
    status is an error that names the known ones.
    """
    query = Query(text=text)
    try:
        tokens = _split(text or "")
    except ValueError as exc:
        raise QueryError(f"unbalanced quotes in query: {exc}") from None
    for token in tokens:
        negate = token.startswith("-") and ":" in token
        body = token[1:] if negate else token
        name, sep, value = body.partition(":")
        name = name.lower()
        if not sep or name not in (*FIELDS, "has", *DATE_FIELDS, "sort"):
            if value and _FIELD_NAME.fullmatch(name) and not value.startswith(("/", "\\")):
                raise _unknown("field", f"{name}:", [f"{k}:" for k in KNOWN])
            _free_text(query, token)
            continue
        if not value:
            raise QueryError(f"{name}: needs a value (known fields: {', '.join(KNOWN)})")
        if name == "sort":
            key = value.lstrip("-+").lower()
            if key not in SORT_COLUMNS:
                raise QueryError(f"sort: unknown column {key!r} (one of {', '.join(SORT_COLUMNS)})")
            query.sort = key
            query.descending = not value.startswith("+")
            continue
        params: list[object] = []
        text = ""
        if name == "has":
            clause = HAS.get(value.lower())
            if clause is None:
                raise QueryError(f"has: unknown value {value!r} (one of {', '.join(sorted(HAS))})")
        elif name in DATE_FIELDS:
            clause = f"first_seen {DATE_FIELDS[name]} ?"
            params.append(_date(value, name))
        else:
            column, kind = FIELDS[name]
            if name == "status" and value.lower() not in STATUSES:
                raise _unknown("status", value, STATUSES)
            if kind == "hash":
                hashed = hash_value(value)
                if hashed is None:
                    raise QueryError(f"hash: expects an md5, sha1, sha256, imphash or ssdeep "
                                     f"hash, got {value!r}")
                query.add(f"(sha256 = ? OR {_HASH_MATCH})", [hashed, hashed], negate=negate)
                continue
            if kind == "exact" and negate and name == "status" and value.lower() in STATUSES:
                others: list[object] = [s for s in STATUSES if s != value.lower()]
                query.add(f"status COLLATE NOCASE IN ({', '.join('?' * len(others))})", others)
                continue
            if kind == "exact":
                clause = f"{column} = ? COLLATE NOCASE"
                params.append(value)
            elif kind == "prefix":
                clause = f"{column} LIKE ? ESCAPE '\\'"
                params.append(_like(value.lower())[1:])
            elif kind == "tag":
                clause = f"{column} LIKE ? ESCAPE '\\'"
                params.append(_like(f",{value.lower()},"))
            else:
                clause = f"{column} LIKE ? ESCAPE '\\'"
                params.append(_like(value))
                if column in TEXT_INDEXED and len(value) >= TRIGRAM:
                    text = f"{column} : {_phrase(value)}"
        query.add(clause, params, text=text, negate=negate)
    if sort is not None:
        if sort not in SORT_COLUMNS:
            raise QueryError(f"unknown sort column {sort!r}")
        query.sort = sort
    if descending is not None:
        query.descending = descending
    return query
