"""Pilot test of the restream screen (m): each target's state and figures, its last error
shown as plain text (no markup), refreshed from the appliance; the caption counts live ones."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import DataTable, Label

from appliance.api.schema import RestreamState, RestreamTarget
from tests.tui.conftest import clock
from tui.app import DashboardApp
from tui.screens.restream import RestreamScreen
from tui.testing import T0, FakeAdminClient, drawn, make_stream
from tui.widgets.viewer_graph import ViewerGraph


def target(n: int, **kw: object) -> RestreamTarget:
    fields: dict[str, object] = {
        "id": n, "channel_id": "s00000000001", "server_url": f"rtmps://t{n}.example:443/live2",
        "key": "<key sha256:0123abcd len=24>", "created_at": T0 - 3600,
        "state": RestreamState.LIVE, "bitrate_kbps": 3120.4, "bytes_sent": 250_000_000,
        "frames_dropped": 0, "connects": 1}
    fields.update(kw)
    return RestreamTarget(**fields)  # type: ignore[arg-type]


async def test_restream_targets_state_figures_and_error() -> None:
    stream = replace(make_stream(1), restream=[
        target(1),
        target(2, state=RestreamState.BACKOFF, bitrate_kbps=0.0, frames_dropped=42,
               failures=3, last_error="server refused publish: [bold]\x1b[31mBadName [/]")])
    fake = FakeAdminClient([stream], relays=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        assert "restream 1/2" in app.screen.query_one(ViewerGraph).caption
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, RestreamScreen)
        table = app.screen.query_one("#targets", DataTable)
        assert table.row_count == 2
        row = [str(c) for c in table.get_row_at(0)]
        assert row[:6] == ["1", "live", "3120", "250.0 MB", "0", "1"]
        assert row[6] == "rtmps://t1.example:443/live2/<key sha256:0123abcd len=24>"
        assert [str(c) for c in table.get_row_at(1)][:5] == ["2", "backoff", "0", "250.0 MB",
                                                              "42"]
        await pilot.press("down")
        await pilot.pause()
        shown = str(app.screen.query_one("#target-error", Label).render())
        assert "(3 failed in a row)" in shown and "BadName [/]" in shown and "\x1b" not in shown
        # A refresh picks up the new state.
        fake.streams[stream.id] = replace(stream, restream=[target(1), target(2)])
        await pilot.press("r")
        await pilot.pause()
        assert str(app.screen.query_one("#targets", DataTable).get_row_at(1)[1]) == "live"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RestreamScreen)
