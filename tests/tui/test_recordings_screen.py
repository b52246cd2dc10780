"""Pilot test of the recordings screen: list, thumbnail age, keep, delete with confirmation."""

from __future__ import annotations

from textual.widgets import DataTable, Label

from tests.tui.conftest import clock
from tui.app import DashboardApp
from tui.screens.recordings import RecordingsScreen
from tui.testing import FakeAdminClient, drawn, make_recording


async def test_recordings_keep_and_delete() -> None:
    """R opens the list (thumbnail age shown, a stopped one says why); k keeps; d + y deletes."""
    fake = FakeAdminClient(relays=[])
    for r in (make_recording(1),
              make_recording(2, state="failed", thumbnail_age=None,
                             error="recording stopped: write failed: No space left on device")):
        fake.recordings[r.broadcast_id] = r
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, RecordingsScreen)
        table = app.screen.query_one("#recordings", DataTable)
        assert table.row_count == 2
        assert str(table.get_row_at(0)[-1]) == "8 s ago" and str(table.get_row_at(1)[-1]) == "—"
        await pilot.press("k")
        await pilot.pause()
        assert ("keep_recording", "b00000000001", True) in fake.calls
        assert fake.recordings["b00000000001"].kept
        await pilot.press("down")
        await pilot.pause()
        assert "No space left" in str(app.screen.query_one("#recording-error", Label).render())
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert ("delete_recording", "b00000000002") in fake.calls
        assert list(fake.recordings) == ["b00000000001"]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RecordingsScreen)
