"""Nothing the analyst needs is cut at 120 columns: sort arrows stay, cut cells have a tooltip."""

from __future__ import annotations

from textual.widgets import Input

from tests.support.pilot import settle
from workbench.tui.app import make_app
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.tui.widgets.message_list import MessageList
from workbench.tui.widgets.virtual_table import fit_title
from workbench.workspace import Workspace


def test_a_sort_arrow_survives_a_narrow_column() -> None:
    assert fit_title("Server ▼", 6) == "Serv ▼"
    assert fit_title("Received ▲", 16) == "Received ▲      "
    assert fit_title("Subject", 4) == "Sub…"


async def test_the_sorted_column_shows_its_arrow_and_cut_cells_their_full_text(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        table = screen.query_one(MessageList)
        screen.query_one("#filter", Input).value = "sort:server"
        await settle(pilot)
        header = table.render_line(0).text
        assert "Serv ▲" in header or "Serv ▼" in header, header
        # hover the attachments column of a row whose names do not fit: the tooltip has them all
        widths = table.column_widths(table.scrollable_content_region.width)
        index = [c.key for c in table.columns].index("attachments")
        x = sum(widths[:index]) + index + 1
        for row in range(min(table.row_count(), 30)):
            cells = table.row_cells(row)
            if cells is not None and len(str(cells[index])) > widths[index]:
                break
        else:
            raise AssertionError("no row with attachment names too long for the column")
        table.scroll_to(y=row, animate=False)
        await pilot.pause()
        await pilot.hover(MessageList, offset=(x, row - int(table.scroll_y) + 1))
        await pilot.pause()
        assert table.tooltip == str(cells[index])
