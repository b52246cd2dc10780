"""Pilot tests: press the keys of each operator journey, assert the intents sent."""

from __future__ import annotations

from tests.tui.conftest import clock, one_live
from tui.app import DashboardApp
from tui.client import ApplianceError, StreamDraft
from tui.screens.credentials import CredentialsScreen
from tui.screens.main import MainScreen
from tui.testing import FakeAdminClient, make_chat
from tui.widgets.banner import ConnectionBanner
from tui.widgets.chat_pane import ChatList


async def test_create_stream_shows_key_once() -> None:
    fake = FakeAdminClient(relays=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await pilot.press("n", *"Jam", "tab", *"Live tonight", "tab", *"music, #jazz",
                          "ctrl+s")
        await pilot.pause()
        assert fake.calls == [("create_stream",
                               StreamDraft("Jam", "Live tonight", ("music", "jazz"), ""))]
        assert isinstance(app.screen, CredentialsScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_validation_error_keeps_the_form_and_resubmits() -> None:
    fake = FakeAdminClient(relays=[])
    fake.errors["create_stream"] = ApplianceError("title is too long", field="title",
                                                  status=400)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await pilot.press("n", *"Jam", "ctrl+s")
        await pilot.pause()
        assert str(app.screen.query_one("#err-title").render()) == "title is too long"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert [c[0] for c in fake.calls] == ["create_stream", "create_stream"]
        assert isinstance(app.screen, CredentialsScreen)


async def test_empty_title_is_refused_locally() -> None:
    fake = FakeAdminClient(relays=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await pilot.press("n", "ctrl+s")
        await pilot.pause()
        assert fake.calls == []
        assert "required" in str(app.screen.query_one("#err-title").render())


async def test_edit_rotate_and_end_with_confirmation() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await pilot.pause()
        await pilot.press("e", "end", *" (encore)", "ctrl+s")
        await pilot.pause()
        assert fake.calls[-1][0:2] == ("update_stream", sid)
        assert fake.calls[-1][2].title == "Friday jazz night (encore)"
        await pilot.press("k", "n")  # declined: nothing sent
        await pilot.pause()
        assert fake.calls[-1][0] == "update_stream"
        await pilot.press("k", "y")
        await pilot.pause()
        assert fake.calls[-1] == ("rotate_key", sid)
        assert isinstance(app.screen, CredentialsScreen)
        await pilot.press("escape", "x", "y")
        await pilot.pause()
        assert fake.calls[-1] == ("end_stream", sid)


async def test_chat_reply_hide_mute_pin() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    messages = fake.chat[sid]
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await pilot.pause()
        await pilot.press("c", *"welcome all", "enter")
        await pilot.pause()
        assert fake.calls[-1] == ("send_chat", sid, "welcome all", None)
        app.screen.query_one(ChatList).focus()
        await pilot.press("home", "down")
        await pilot.press("h")
        await pilot.pause()
        assert fake.calls[-1] == ("hide_message", sid, messages[1].id)
        await pilot.press("m")
        await pilot.pause()
        assert fake.calls[-1] == ("mute_pubkey", messages[1].pubkey)
        await pilot.press("p")
        await pilot.pause()
        assert fake.calls[-1] == ("pin_message", sid, messages[1].id)
        await pilot.press("r", *"thanks!", "enter")
        await pilot.pause()
        assert fake.calls[-1] == ("send_chat", sid, "thanks!", messages[1].id)


async def test_moderation_events_update_the_chat() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await pilot.pause()
        hidden = make_chat(sid, 1, "sound is great", hidden=True)
        fake.emit("chat", {"stream_id": sid, "reason": "hidden", "message": hidden.to_dict()})
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert screen.model.chat[sid][hidden.id].hidden
        # The appliance announces a mute as {"pubkey", "muted"} for every stream at once.
        fake.emit("chat", {"stream_id": "", "reason": "muted",
                           "message": {"pubkey": hidden.pubkey, "muted": True}})
        await pilot.pause()
        assert screen.model.chat[sid][hidden.id].muted
        fake.emit("chat", {"stream_id": "", "reason": "unmuted",
                           "message": {"pubkey": hidden.pubkey, "muted": False}})
        await pilot.pause()
        assert not screen.model.chat[sid][hidden.id].muted


async def test_lost_socket_shows_banner_and_reconnects() -> None:
    fake = one_live()
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await pilot.pause()
        banner = app.screen.query_one(ConnectionBanner)
        assert not banner.display
        fake.disconnect()
        await pilot.pause()
        assert banner.display and "lost" in banner.message
        fake.reconnect()
        await fake.subscribed.wait()  # the feed retried after its backoff
        await pilot.pause()
        assert not banner.display


async def test_chat_burst_is_coalesced() -> None:
    """A burst of 200 chat events produces a handful of redraws, not 200."""
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    redraws = 0

    def hook(message: object) -> None:
        nonlocal redraws
        redraws += type(message).__name__ == "Redraw"

    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        await fake.subscribed.wait()
        await pilot.pause()
        before = redraws
        for i in range(200):
            fake.emit("chat", {"stream_id": sid, "reason": "new",
                               "message": make_chat(sid, 100 + i).to_dict()})
        await pilot.pause()
        await pilot.pause()
        assert redraws - before < 20
        assert len(app.screen.query_one(ChatList).options) == 200
