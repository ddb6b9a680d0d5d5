"""Control and bidi characters from mail never reach the terminal, and show where they were."""

from __future__ import annotations

import datetime as dt

import pytest
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.strip import Strip

from tests.support.pilot import settle
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.samples.mail import Attachment, Mail
from workbench.tui.app import make_app
from workbench.tui.safety import ControlFilter, visible
from workbench.tui.widgets.message_list import MessageList, row_cells
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

TITLE_ATTACK = "\x1b]2;owned\x07"
RTLO_NAME = "invoice_\u202egpj.exe"


def test_visible_shows_controls_and_bidi() -> None:
    assert visible("plain text") == "plain text"
    assert visible(f"hi{TITLE_ATTACK}") == "hi␛]2;owned␇"
    assert visible(RTLO_NAME) == "invoice_⟨U+202E⟩gpj.exe"
    assert visible("a\tb\nc") == "a␉b␊c"
    assert visible("a\tb\nc", multiline=True) == "a\tb\nc"
    assert visible("x\x9by") == "x�y"           # C1 CSI


def test_filter_drops_them_from_any_line_and_keeps_width() -> None:
    segments = [Segment("ok "), Segment(f"bad{TITLE_ATTACK}\u202e!", Style(bold=True)),
                Segment("\x1b[2J", None, [])]
    out = ControlFilter().apply(segments, Color(0, 0, 0))
    text = "".join(s.text for s in out)
    assert text == "ok bad]2;owned![2J"        # what is left is inert printable text
    assert out[1].style == Style(bold=True)
    assert Strip(out).cell_length == Strip(segments).cell_length
    clean = [Segment("fine")]
    assert ControlFilter().apply(clean, Color(0, 0, 0)) is clean


async def test_hostile_subject_and_file_name_in_the_ui(ui_workspace: Workspace) -> None:
    mail = Mail("evil@x.example", "analyst@corp.example", f"Pay now{TITLE_ATTACK}",
                date=dt.datetime(2027, 1, 1, tzinfo=dt.UTC), text="x",
                attachments=[Attachment(RTLO_NAME, b"MZ" + b"\0" * 64)])
    with Quarantine.open(ui_workspace) as q:
        ingest_bytes(q, mail.build(), tower="t1", server="mx1", reason="stuck", source="t",
                     received_at=mail.date)
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.get_line_filters()[-1], ControlFilter)
        listing = app.screen.query_one(MessageList).listing
        row = listing.row(0)
        assert "\x1b" in row.subject                       # the index keeps the truth
        cells = row_cells(row)
        assert "Pay now␛]2;owned␇" in str(cells[6])
        assert "⟨U+202E⟩" in str(cells[7])
        # every line the list draws, after the app's filters, is free of control codes
        table = app.screen.query_one(MessageList)
        for y in range(5):
            strip = table.render_line(y)
            for line_filter in app.get_line_filters():
                strip = strip.apply_filter(line_filter, Color(0, 0, 0))
            assert not any(ord(c) < 0x20 or c == "\u202e" for s in strip for c in s.text)
