"""The filter bar says what is wrong with an unknown field or status, as the CLI does."""

from __future__ import annotations

from textual.widgets import Input, Static

from tests.support.pilot import settle
from workbench.tui.app import make_app
from workbench.workspace import Workspace


async def test_unknown_fields_and_statuses_are_errors_with_a_hint(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        error = app.screen.query_one("#query-error", Static)
        for text, hint in (("towr:t12", "did you mean 'tower:'"), ("foo:bar", "unknown field 'foo:'"),
                           ("status:bogus", "unknown status 'bogus'")):
            app.screen.query_one("#filter", Input).value = text
            await settle(pilot)
            assert error.display and hint in str(error.render()), text
            assert app.screen.query_one("#filter", Input).has_class("-invalid")
        app.screen.query_one("#filter", Input).value = "status:new"
        await settle(pilot)
        assert not error.display
