"""The quarantine query language: ``tower:t12 reason:unknown-virus has:attachment invoice``."""

from __future__ import annotations

import datetime as dt
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
    _use_index: dict[str, bool] = field(default_factory=dict)   # planned()'s answers, kept

    @property
    def where(self) -> str:
        """Every term as SQL over ``messages`` alone (LIKE for the text terms)."""
        return " AND ".join(self.clauses) if self.clauses else "1"

    def add(self, clause: str, params: list[object], *, text: str = "", negate: bool = False) -> None:
        """A clause and its parameters; ``text`` (an FTS5 query) marks a term the text index
        can narrow (not a negated one: NOT of a rare word selects nearly every row anyway)."""
        if text and not negate:
            self.text_terms.append(TextTerm(len(self.clauses), text))
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
_TEXT_MATCH = "sha256 IN (SELECT sha256 FROM messages_fts WHERE messages_fts MATCH ?)"


def _phrase(value: str) -> str:
    """``value`` as one FTS5 phrase: with the trigram tokenizer, a case-insensitive substring."""
    return '"' + value.replace('"', '""') + '"'


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

    Terms are ANDed. ``-field:value`` negates a term. Anything without a known
    ``field:`` prefix is free text, matched against subject, sender and
    attachment names.
    """
    query = Query(text=text)
    try:
        tokens = shlex.split(text or "")
    except ValueError as exc:
        raise QueryError(f"unbalanced quotes in query: {exc}") from None
    for token in tokens:
        negate = token.startswith("-") and ":" in token
        body = token[1:] if negate else token
        name, sep, value = body.partition(":")
        name = name.lower()
        if not sep or name not in (*FIELDS, "has", *DATE_FIELDS, "sort"):
            like = _like(token)
            query.add("(subject LIKE ? ESCAPE '\\' OR from_addr LIKE ? ESCAPE '\\' "
                      "OR attachment_names LIKE ? ESCAPE '\\')", [like, like, like],
                      text=_phrase(token) if len(token) >= TRIGRAM else "")
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
