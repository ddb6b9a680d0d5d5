"""Helpers for the tower-scanner tests: installed bundles, an SMTP sink, mail built in code."""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.live_server import free_port
from workbench.distribute.install import InstallDir
from workbench.release.bundle import open_bundle
from workbench.samples.archives import build_zip
from workbench.samples.mail import EICAR, GTUBE, Attachment, Mail

__all__ = ["EICAR", "GTUBE", "Sink", "install", "mail", "send"]


def install(install_dir: Path, bundle: Path) -> Path:
    """Put a bundle in place the way the agent does (unpack, commit, switch ``current``)."""
    folder = InstallDir(install_dir).ensure()
    b = open_bundle(bundle)
    staging = folder.new_staging(b.manifest.serial)
    b.extract_to(staging)
    final = folder.commit(staging, b.manifest.serial)
    folder.switch(final)
    return final


def mail(subject: str, *, text: str = "hello", attachments: list[Attachment] | None = None) -> bytes:
    """A message with CRLF line ends, as it travels over SMTP."""
    return Mail(sender="a@example.org", to="b@example.net", subject=subject, text=text,
                attachments=attachments or []).build().replace(b"\n", b"\r\n")


def zip_attachment(name: str, members: list[tuple[str, bytes]]) -> Attachment:
    return Attachment(name, build_zip(members), "application/zip")


@dataclass
class _Collect:
    received: list[Envelope] = field(default_factory=list)
    answer: str = "250 OK"
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answer.startswith("250"):
            self.received.append(envelope)
            self.arrived.set()
        return self.answer


class Sink:
    """The next hop: a real SMTP server on loopback that keeps what it is given."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.handler = _Collect()
        self.controller: Controller | None = None

    @property
    def received(self) -> list[Envelope]:
        return self.handler.received

    def start(self) -> Sink:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     decode_data=False)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def send(port: int, raw: bytes, *, timeout: float = 60) -> tuple[int, bytes]:
    """One message through an SMTP server on loopback: its answer to DATA (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
        client.ehlo()
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        return client.data(raw)
