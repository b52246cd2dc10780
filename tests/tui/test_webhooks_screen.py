"""Pilot test of the webhooks screen: state per endpoint, last error, test message."""

from __future__ import annotations

from textual.widgets import DataTable, Label

from appliance.api.schema import WebhookState
from tests.tui.conftest import clock
from tui.app import DashboardApp
from tui.screens.webhooks import WebhooksScreen
from tui.testing import FakeAdminClient, drawn, make_webhook


async def test_webhooks_state_error_and_test() -> None:
    """W lists endpoints with state; the failing one's error shows; t queues a test."""
    fake = FakeAdminClient(relays=[])
    for w in (make_webhook(1),
              make_webhook(2, state=WebhookState.FAILING, consecutive_failures=3,
                           last_status=500, last_error="HTTP 500: \x1b[31mboom [/] [bold]x")):
        fake.webhooks[w.id] = w
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("W")
        await pilot.pause()
        assert isinstance(app.screen, WebhooksScreen)
        table = app.screen.query_one("#webhooks", DataTable)
        assert table.row_count == 2
        assert str(table.get_row_at(0)[1]) == "ok"
        assert str(table.get_row_at(1)[1]) == "failing"
        assert str(table.get_row_at(0)[5]) == "30 s ago"
        await pilot.press("down")
        await pilot.pause()
        shown = str(app.screen.query_one("#webhook-error", Label).render())
        # Shown literally: no markup parsed (a "[/]" would even raise MarkupError).
        assert "boom [/] [bold]x" in shown and "\x1b" not in shown
        await pilot.press("t")
        await pilot.pause()
        assert ("test_webhook", "000000000002") in fake.calls
        await pilot.pause()
        assert app.screen.query_one("#webhooks", DataTable).get_row_at(1)[4].plain == "1"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, WebhooksScreen)
