"""Builders of small synthetic mail for the quarantine tests, and what an index holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from workbench.quarantine.service import index_address
from workbench.samples.mail import Attachment, Mail


def make_mail(n: int, *, subject: str | None = None, sender: str | None = None,
              attachment: str | None = None) -> bytes:
    return Mail(sender or f"user{n}@sender{n % 7}.example", f"rcpt{n}@corp.example",
                subject or f"Message number {n}", text=f"body {n}\n",
                attachments=[Attachment(attachment, b"payload %d" % n)] if attachment else [],
                date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n)).build()


def indexed_shas(root: Path) -> set[str]:
    """The messages the quarantine at ``root`` has indexed, read by a connection of our own
    (whichever backend it uses); empty while there is no index yet."""
    import sqlite3

    address = index_address(root)
    if address:
        import psycopg

        with psycopg.connect(address) as db:
            if db.execute("SELECT to_regclass('messages')").fetchone() == (None,):
                return set()
            return {r[0] for r in db.execute("SELECT sha256 FROM messages")}
    if not (root / "index.sqlite").exists():
        return set()
    con = sqlite3.connect(f"file:{root / 'index.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return {r[0] for r in con.execute("SELECT sha256 FROM messages")}
    finally:
        con.close()
