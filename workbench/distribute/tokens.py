"""Per-tower bearer tokens for the server's write endpoints, stored hashed in ``state/tokens.json``.

A token reads ``wbt_<id>_<secret>``: the id finds the record without a scan and names it
in ``tokens list`` and ``tokens revoke``; only the SHA-256 of the whole token is stored.
A plain hash is enough because the secret is 256 random bits (no dictionary to try).
The server re-reads the file when it changes, so adding or revoking needs no restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.document import iso, utcnow
from workbench.durable import atomic_write
from workbench.errors import Kind, WorkbenchError
from workbench.workspace import Workspace

TOKEN_PREFIX = "wbt"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TOKEN = re.compile(r"wbt_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})")


class TokenError(WorkbenchError):
    """A bad tower name or an unknown token id."""

    kind = Kind.USAGE


def check_name(kind: str, name: str) -> str:
    if not NAME.fullmatch(name):
        raise TokenError(f"{kind} name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """One issued token (``tokens list --json``); the hash never leaves the file."""

    id: str
    tower: str
    created: str
    label: str = ""
    hash: str = field(default="", metadata={"internal": True}, repr=False)


class TokenStore:
    """The token file; safe for a server reading while the CLI writes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_id: dict[str, TokenRecord] = {}

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> TokenStore:
        return cls(workspace.state / "tokens.json")

    # -- reading -----------------------------------------------------------------------

    def _load(self) -> dict[str, TokenRecord]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._by_id = None, {}
            return self._by_id
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            raw = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            records = [TokenRecord(**r) for r in raw.get("tokens", [])]
            self._by_id = {r.id: r for r in records}
            self._stamp = stamp
        return self._by_id

    def records(self) -> list[TokenRecord]:
        with self._lock:
            return sorted(self._load().values(), key=lambda r: (r.tower, r.created, r.id))

    def verify(self, token: str) -> str | None:
        """The tower a presented token belongs to, or None."""
        m = _TOKEN.fullmatch(token.strip())
        if not m:
            return None
        with self._lock:
            try:
                record = self._load().get(m.group(1))
            except (OSError, ValueError):
                return None
        if record is None:
            return None
        return record.tower if hmac.compare_digest(record.hash, token_hash(token.strip())) else None

    # -- writing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, TokenRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            with self._lock:
                self._stamp = None
                records = dict(self._load())
                yield records
                data = json.dumps({"tokens": [asdict(r) for r in records.values()]}, indent=2)
                atomic_write(self.path, data + "\n", mode=0o600)
                self._stamp = None

    def add(self, tower: str, *, label: str = "") -> tuple[TokenRecord, str]:
        """Issue a token for ``tower``; the token itself is returned once and never stored."""
        check_name("tower", tower)
        with self._editing() as records:
            token_id = secrets.token_hex(6)
            while token_id in records:
                token_id = secrets.token_hex(6)
            token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
            record = TokenRecord(id=token_id, tower=tower, created=iso(utcnow()), label=label,
                                 hash=token_hash(token))
            records[token_id] = record
        return record, token

    def revoke(self, ident: str) -> list[TokenRecord]:
        """Revoke one token by id, or every token of a tower by its name."""
        with self._editing() as records:
            gone = [r for r in records.values() if r.id == ident] or \
                   [r for r in records.values() if r.tower == ident]
            if not gone:
                raise TokenError(f"no token with id or tower {ident!r}", kind=Kind.NOT_FOUND)
            for r in gone:
                del records[r.id]
        return gone
