"""Builders of small synthetic mail for the quarantine tests."""

from __future__ import annotations

import datetime as dt

from workbench.samples.mail import Attachment, Mail


def make_mail(n: int, *, subject: str | None = None, sender: str | None = None,
              attachment: str | None = None) -> bytes:
    return Mail(sender or f"user{n}@sender{n % 7}.example", f"rcpt{n}@corp.example",
                subject or f"Message number {n}", text=f"body {n}\n",
                attachments=[Attachment(attachment, b"payload %d" % n)] if attachment else [],
                date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n)).build()
