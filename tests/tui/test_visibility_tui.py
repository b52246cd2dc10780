"""The dashboard's side of issue 14 §1: visibility in the channel form and the channel list,
and a viewer link from ``v`` (pilot tests with the fake admin client)."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import Input, Select

from tests.tui.conftest import clock, one_live
from tui.app import DashboardApp
from tui.client import StreamDraft
from tui.screens.grant import LINK_SECONDS, GrantScreen
from tui.screens.main import MainScreen
from tui.testing import FakeAdminClient, drawn
from tui.widgets.stream_table import StreamTable


async def test_visibility_is_sent_only_when_changed_and_shown_in_the_list() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert app.screen.query_one("#f-visibility", Select).value == "public"
        await pilot.press("ctrl+s")  # unchanged: nothing about visibility is sent
        await pilot.pause()
        assert fake.calls[-1] == ("update_stream", sid, StreamDraft(
            "Friday jazz night", "", ("music",), "", record=True, retention_days=None))
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#f-visibility", Select).value = "private"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake.calls[-1][2].visibility == "private"
        assert fake.calls[-1][2].to_dict()["visibility"] == "private"
        await pilot.pause()
        table = app.screen.query_one(StreamTable)
        title = str(table.get_row(sid)[0])
        assert title.startswith("[private] ") and "Friday jazz night" in title
        await pilot.press("e")  # the form opens on the channel's current visibility
        await pilot.pause()
        assert app.screen.query_one("#f-visibility", Select).value == "private"


async def test_new_channel_can_start_unlisted() -> None:
    fake = FakeAdminClient(relays=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("n", *"Rehearsal")
        app.screen.query_one("#f-visibility", Select).value = "unlisted"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake.calls == [("create_stream", StreamDraft("Rehearsal",
                                                            visibility="unlisted"))]


async def test_v_makes_a_viewer_link() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    fake.streams[sid] = replace(fake.streams[sid], visibility="private")
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("v")
        await pilot.pause()
        assert fake.calls[-1] == ("create_grant", sid, LINK_SECONDS)
        assert isinstance(app.screen, GrantScreen)
        link = app.screen.query_one("#link", Input).value
        assert link.startswith(f"http://box:8080/c/{sid}#grant=v1.watch.")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
