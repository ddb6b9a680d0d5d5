"""The quarantine query language: ``tower:t12 reason:unknown-virus has:attachment invoice``."""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass, field

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
KNOWN = sorted([*FIELDS, "has", *DATE_FIELDS, "sort"])


class QueryError(ValueError):
    """The query text cannot be understood; the message says where."""


@dataclass
class Query:
    text: str = ""
    clauses: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)
    sort: str = "received"
    descending: bool = True

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"

    @property
    def order_by(self) -> str:
        column = SORT_COLUMNS[self.sort]
        direction = "DESC" if self.descending else "ASC"
        # rowid breaks ties so paging is stable
        return f"{column} {direction}, rowid {direction}"


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
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


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
            query.clauses.append(
                "(subject LIKE ? ESCAPE '\\' OR from_addr LIKE ? ESCAPE '\\' "
                "OR attachment_names LIKE ? ESCAPE '\\')")
            query.params += [like, like, like]
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
        if name == "has":
            clause = HAS.get(value.lower())
            if clause is None:
                raise QueryError(f"has: unknown value {value!r} (one of {', '.join(sorted(HAS))})")
        elif name in DATE_FIELDS:
            clause = f"first_seen {DATE_FIELDS[name]} ?"
            query.params.append(_date(value, name))
        else:
            column, kind = FIELDS[name]
            if kind == "exact":
                clause = f"{column} = ? COLLATE NOCASE"
                query.params.append(value)
            elif kind == "prefix":
                clause = f"{column} LIKE ? ESCAPE '\\'"
                query.params.append(_like(value.lower())[1:])
            elif kind == "tag":
                clause = f"{column} LIKE ? ESCAPE '\\'"
                query.params.append(_like(f",{value.lower()},"))
            else:
                clause = f"{column} LIKE ? ESCAPE '\\'"
                query.params.append(_like(value))
        query.clauses.append(f"NOT ({clause})" if negate else clause)
    if sort is not None:
        if sort not in SORT_COLUMNS:
            raise QueryError(f"unknown sort column {sort!r}")
        query.sort = sort
    if descending is not None:
        query.descending = descending
    return query
