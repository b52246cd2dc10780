"""Pilot test of the analytics screen: reachable with ``a`` from the dashboard (the selected
channel's latest broadcast) and from recordings (that broadcast); figures, split and stepping
between broadcasts; operator text is never markup."""

from __future__ import annotations

from textual.widgets import DataTable, Label, Sparkline, Static

from tests.tui.conftest import clock, one_live
from tui.app import DashboardApp
from tui.client import ApplianceError
from tui.screens.analytics import AnalyticsScreen
from tui.screens.error import ErrorScreen
from tui.testing import T0, drawn, make_analytics, make_recording


def _text(screen: AnalyticsScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_dashboard_a_opens_the_channels_analytics_and_steps_broadcasts() -> None:
    fake = one_live()
    cid = next(iter(fake.streams))
    fake.analytics["b00000000001"] = make_analytics(cid, "b00000000001", title="[b]old[/b] set")
    fake.analytics["b00000000002"] = make_analytics(
        cid, "b00000000002", title="Earlier set", started_at=T0 - 90_000, minutes=10, peak=7,
        timeline=[], split=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 32)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("a")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AnalyticsScreen)
        await pilot.pause()
        assert screen.broadcast is not None and screen.broadcast.broadcast_id == "b00000000001"
        # The title is shown literally ("[/b]" as markup would even raise).
        assert "[b]old[/b] set" in _text(screen, "#analytics-broadcast")
        assert "Friday jazz night" in str(screen.query_one("#analytics-title", Label).render())
        figures = _text(screen, "#analytics-figures")
        assert "Peak 31" in figures and "57 unique viewers" in figures
        assert "212 messages from 19 chatters" in figures
        assert screen.query_one("#analytics-sparkline", Sparkline).data == [
            m.viewers for m in fake.analytics["b00000000001"].timeline]
        kinds, devices = (screen.query_one(f"#analytics-{a}", DataTable)
                          for a in ("kind", "device"))
        rows = [[str(c) for c in kinds.get_row_at(i)] for i in range(kinds.row_count)]
        assert rows == [["LL-HLS", "48", "43", "8:50:00"], ["HLS", "7", "5", "1:25:40"],
                        ["WebRTC", "12", "11", "1:12:10"], ["Recording", "5", "4", "35:40"]]
        rows = [[str(c) for c in devices.get_row_at(i)] for i in range(devices.row_count)]
        assert ["bot (excl.)", "3", "2", "0:40"] in rows and len(rows) == 5
        assert "Last 30 days: 2 broadcasts" in _text(screen, "#analytics-channel")
        await pilot.press("left_square_bracket")
        await pilot.pause()
        await pilot.pause()
        assert screen.broadcast is not None and screen.broadcast.broadcast_id == "b00000000002"
        assert screen.query_one("#analytics-kind", DataTable).row_count == 0
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, AnalyticsScreen)


async def test_recordings_a_opens_that_broadcast() -> None:
    fake = one_live()
    cid = next(iter(fake.streams))
    rec = make_recording(1, channel_id=cid)
    fake.recordings[rec.broadcast_id] = rec
    fake.analytics[rec.broadcast_id] = make_analytics(cid, rec.broadcast_id)
    fake.analytics["b00000000009"] = make_analytics(cid, "b00000000009", started_at=T0)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 32)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, AnalyticsScreen)
        assert ("broadcast_analytics", rec.broadcast_id) in fake.calls


async def test_no_broadcast_yet_and_a_refusal() -> None:
    fake = one_live()
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 32)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("a")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, AnalyticsScreen)
        assert "No broadcast" in _text(app.screen, "#analytics-broadcast")
        fake.errors["channel_analytics"] = ApplianceError(
            "analytics are off (analytics.enabled = false)", "Request refused (503)")
        await pilot.press("r")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)
