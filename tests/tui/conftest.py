"""A small generated quarantine for the UI tests, and helpers that wait for the app to settle."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, TextArea

from tests.support.ui_samples import MARKER, MESSAGES, QUOTED, RULE
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.dissect.walker import dissect_message
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.samples.archives import build_zip
from workbench.samples.mail import EICAR, GTUBE, Attachment, Mail, received
from workbench.samples.pe import build_pe
from workbench.workspace import Workspace

BASE = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
TOWERS = ("t12", "t07", "t30")
SENDERS = ("billing@acme-invoices.example", "hr@payroll.example", "news@weekly.example")
SUBJECTS = ("Invoice {n}", "Payroll update {n}", "This week in review {n}")


def _plain(n: int) -> Mail:
    kind = n % 3
    when = BASE + dt.timedelta(hours=n)
    mail = Mail(sender=SENDERS[kind], to="analyst@corp.example",
                subject=SUBJECTS[kind].format(n=n), date=when,
                text=f"Hello,\nplease see http://evil-{n}.example/login?id={n}\n",
                headers=[received("mx1.corp.example", "relay.example.net", "192.0.2.10", when)])
    if kind == 0:
        mail.attachments.append(Attachment(f"invoice-{n}.zip", build_zip([("eicar.com", EICAR)]),
                                           content_type="application/zip"))
    return mail


def special_messages() -> list[tuple[Mail, str]]:
    """Messages the flows open by subject: a PE loader and a spam test."""
    when = BASE + dt.timedelta(days=3)
    loader = build_pe(overlay=MARKER.encode() + b"\x00" * 64)
    return [
        (Mail(sender="Accounts <accounts@acme-invoices.example>", to="analyst@corp.example",
              subject="Loader sample", date=when, text="see attached",
              attachments=[Attachment("setup.exe", loader,
                                      content_type="application/x-msdownload")]),
         "unknown-virus"),
        (Mail(sender="offers@cheap.example", to="analyst@corp.example", subject="GTUBE spam",
              date=when + dt.timedelta(minutes=5), text=GTUBE.decode()), "spam"),
    ]


def build_quarantine(workspace: Workspace, count: int = MESSAGES) -> None:
    with Quarantine.open(workspace) as q:
        for n in range(count):
            mail = _plain(n)
            ingest_bytes(q, mail.build(), tower=TOWERS[n % 3], server=f"mx{n % 4}",
                         reason="unknown-virus" if n % 3 == 0 else "stuck",
                         source=f"test#{n}", received_at=mail.date)
        for mail, reason in special_messages():
            ingest_bytes(q, mail.build(), tower="t12", server="mx9", reason=reason,
                         source=f"test:{mail.subject}", received_at=mail.date)


@pytest.fixture(scope="session")
def _dissected_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    home = tmp_path_factory.mktemp("tui-template") / "home"
    workspace = Workspace.resolve(home).ensure()
    build_quarantine(workspace)
    # the messages the flows open are dissected once here; each copy reuses the report cache
    # (and the store holds the extracted attachments)
    loader = None
    with Quarantine.open(workspace) as q:
        for row in q.index.list("subject:Loader", limit=5) + q.index.list('subject:"Invoice 3"', limit=5):
            result = dissect_message(q, row.sha256)
            loader = loader or next((a for a in result.root.walk() if a.safe_name == "setup.exe"), None)
    return home, loader


@pytest.fixture(scope="session")
def _quarantine_template(_dissected_template: tuple[Path, Any]) -> Path:
    return _dissected_template[0]


@pytest.fixture(scope="session")
def loader_exe(_dissected_template: tuple[Path, Any]) -> Any:
    """The Artifact of the loader sample's setup.exe (its bytes are in every copy's store)."""
    assert _dissected_template[1] is not None
    return _dissected_template[1]


@pytest.fixture
def ui_workspace(_quarantine_template: Path, tmp_path: Path) -> Workspace:
    """A private copy of the generated quarantine (tests triage, save rules ...)."""
    home = tmp_path / "home"
    shutil.copytree(_quarantine_template, home)
    return Workspace.resolve(home)



@pytest.fixture
def corpora_workspace(ui_workspace: Workspace, tmp_path: Path) -> Workspace:
    """A malicious corpus with EICAR, a clean one quoting it, and the rule file to test."""
    mal, clean = tmp_path / "mal", tmp_path / "clean"
    mal.mkdir()
    clean.mkdir()
    (mal / "eicar.com").write_bytes(EICAR)
    (mal / "other.bin").write_bytes(b"MZ nothing to see")
    (clean / "notes.txt").write_bytes(QUOTED)
    (clean / "readme.txt").write_bytes(b"hello\n")
    with CorpusRegistry(ui_workspace) as registry:
        registry.add("mal", mal, "malicious")
        registry.add("clean", clean, "clean")
    rule = ui_workspace.signatures / "rules" / "test" / "eicar_marker.yar"
    rule.parent.mkdir(parents=True)
    rule.write_text(RULE)
    return ui_workspace


FIXED_GIT_DATE = "2026-11-20T09:00:00+00:00"


def git_signatures(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The house signatures committed once in a repository of their own, on branch main.

    Commit dates are fixed so commit ids (and screenshots showing them) are the same
    on every run.
    """
    import git

    from tests.support.signatures import HOUSE

    for var in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(var, FIXED_GIT_DATE)
    shutil.copytree(HOUSE, folder, ignore=shutil.ignore_patterns("CHANGELOG.md"))
    repo = git.Repo.init(folder, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Tester")
        cw.set_value("user", "email", "tester@example.invalid")
    repo.git.add(A=True)
    repo.git.commit("-q", "-m", "house rules")
    return folder


@pytest.fixture
def sig_workspace(ui_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The generated quarantine with the house signatures in git beside it."""
    signatures = git_signatures(tmp_path / "signatures", monkeypatch)
    return Workspace(ui_workspace.home, signatures_override=signatures)


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blinking cursors make screenshots differ by timing; freeze them on."""
    monkeypatch.setattr(Input.cursor_blink, "_default", False)
    monkeypatch.setattr(TextArea.cursor_blink, "_default", False)


@pytest.fixture(autouse=True)
def _no_animations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot waits for animations to end after each key: a tab switch's underline cost 0.4 s."""
    import textual.constants

    monkeypatch.setattr(textual.constants, "TEXTUAL_ANIMATIONS", "none")
