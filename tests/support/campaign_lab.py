"""A quarantine holding a synthetic wave among unrelated mail: the campaign and UI tests share it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from workbench.dissect.walker import dissect_message
from workbench.quarantine.ingest import ingest_spool
from workbench.quarantine.service import Quarantine
from workbench.samples.campaign import WaveMessage, courier_wave
from workbench.samples.mail import Attachment, Mail, received
from workbench.samples.threats import benign_pe, threat
from workbench.workspace import Workspace

START = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)


@dataclass
class WaveLab:
    workspace: Workspace
    wave: list[str]            # sha256 of every wave message
    others: list[str]          # unrelated messages
    messages: list[WaveMessage]


def spool(q: Quarantine, data: bytes, *, tower: str, when: dt.datetime, n: int) -> None:
    folder = q.incoming / tower / "mx01"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{n:05d}.eml"
    path.write_bytes(data)
    os.utime(path, (when.timestamp(), when.timestamp()))
    (folder / f"{path.name}.json").write_text(json.dumps(
        {"reason": "unknown-virus", "received_at": when.isoformat(), "tower": tower, "server": "mx01"}))


def unrelated_mail() -> list[tuple[bytes, str, dt.datetime]]:
    """Other threats and ordinary mail in the same hours, from other senders."""
    out = []
    for i, key in enumerate(("stealer", "pe-loader", "macro-doc", "js-dropper")):
        t = threat(key)
        when = START + dt.timedelta(minutes=17 + 40 * i)
        out.append((Mail(f"noreply@other{i}.example", "li.wei@contoso.example", f"Unrelated {key} {i}",
                         text=f"Something else entirely, number {i}, about {t.description}.",
                         attachments=[Attachment(t.filename, t.build())], date=when,
                         headers=[received("mx.quarantine.example", f"smtp.other{i}.example",
                                           f"198.51.100.{20 + i}", when)]).build(), "fra-t07", when))
    name, pe = benign_pe()
    for i in range(3):
        when = START + dt.timedelta(minutes=33 + 50 * i)
        out.append((Mail("build@northwind.example", "ops@contoso.example", f"Launcher build {i}",
                         text="Here is the launcher from our build server.",
                         attachments=[Attachment(name, pe)], date=when,
                         headers=[received("mx.quarantine.example", "relay.northwind.example",
                                           "198.51.100.99", when)]).build(), "ams-t03", when))
    return out


def build_wave_lab(home: Path, *, wave_size: int = 12, dissect: bool = True) -> WaveLab:
    workspace = Workspace.resolve(home).ensure()
    wave = courier_wave(START, messages=wave_size)
    with Quarantine.open(workspace) as q:
        n = 0
        for w in wave:
            spool(q, w.mail.build(), tower=w.tower, when=w.when, n=(n := n + 1))
        for data, tower, when in unrelated_mail():
            spool(q, data, tower=tower, when=when, n=(n := n + 1))
        summary = ingest_spool(q)
        assert summary.failed == 0
        wave_ids = {hashlib.sha256(w.mail.build()).hexdigest() for w in wave}
        shas = sorted(q.index.all_shas())
        wave_shas = [s for s in shas if s in wave_ids]
        others = [s for s in shas if s not in wave_ids]
        assert len(wave_shas) == wave_size
        if dissect:
            for sha in sorted(q.index.all_shas()):
                dissect_message(q, sha)
    return WaveLab(workspace, wave_shas, others, wave)
