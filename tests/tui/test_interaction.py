"""Pilot tests: press the keys of each operator journey, assert the intents sent."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import Checkbox, Input, Label

from appliance.api.schema import ChatChange, ChatEvent, MuteEvent, ViewersEvent
from tests.tui.conftest import clock, one_live, with_errors
from tui.app import DashboardApp
from tui.client import ApplianceError, StreamDraft
from tui.screens.credentials import CredentialsScreen
from tui.screens.main import MainScreen
from tui.screens.plan_form import PlanForm
from tui.testing import T0, FakeAdminClient, drawn, make_chat
from tui.widgets.banner import ConnectionBanner
from tui.widgets.chat_log import ChatLog
from tui.widgets.log_pane import LogPane
from tui.widgets.stream_table import StreamTable


async def test_create_stream_shows_key_once() -> None:
    fake = FakeAdminClient(relays=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
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
        await drawn(pilot)
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
        await drawn(pilot)
        await pilot.press("n", "ctrl+s")
        await pilot.pause()
        assert fake.calls == []
        assert "required" in str(app.screen.query_one("#err-title").render())


async def test_create_channel_with_recording_off_and_a_retention() -> None:
    """The recording row (issue 9): record off and 30 days travel in the create call."""
    fake = FakeAdminClient(relays=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("n", *"Talks", "tab", "tab", "tab", "tab", "space", "tab", *"30",
                          "ctrl+s")
        await pilot.pause()
        assert fake.calls == [("create_stream", StreamDraft("Talks", record=False,
                                                            retention_days=30))]
        created = next(iter(fake.streams.values()))
        assert (created.record, created.retention_days) == (False, 30)


async def test_edit_prefills_recording_policy_and_clears_retention() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    fake.streams[sid] = replace(fake.streams[sid], record=False, retention_days=7)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert app.screen.query_one("#f-record", Checkbox).value is False
        assert app.screen.query_one("#f-retention_days", Input).value == "7"
        await pilot.press("ctrl+s")  # unchanged: the same policy is sent back
        await pilot.pause()
        assert fake.calls[-1] == ("update_stream", sid, StreamDraft(
            "Friday jazz night", "", ("music",), "", record=False, retention_days=7))
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#f-retention_days", Input).value = ""  # back to the default
        app.screen.query_one("#f-record", Checkbox).value = True
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake.calls[-1][2].record is True
        assert fake.calls[-1][2].retention_days is None


async def test_retention_errors_show_under_the_field() -> None:
    """0 days is refused locally; the appliance's 400 naming retention_days (e.g. above its
    maximum) keeps the form and shows its message under the recording row."""
    fake = FakeAdminClient(relays=[])
    fake.errors["create_stream"] = ApplianceError(
        "retention_days: a whole number of days from 1 to 3650", field="retention_days",
        status=400)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("n", *"Jam", "tab", "tab", "tab", "tab", "tab", "0", "ctrl+s")
        await pilot.pause()
        assert fake.calls == []
        error = app.screen.query_one("#err-retention_days", Label)
        assert error.display and "whole number" in str(error.render())
        await pilot.press("backspace", *"9999", "ctrl+s")
        await pilot.pause()
        assert fake.calls == [("create_stream", StreamDraft("Jam", retention_days=9999))]
        error = app.screen.query_one("#err-retention_days", Label)
        assert error.display and "1 to 3650" in str(error.render())
        assert app.screen.query_one("#f-retention_days", Input).has_focus
        assert app.screen.query_one("#f-retention_days", Input).value == "9999"


async def test_edit_rotate_and_end_with_confirmation() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
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


async def test_plan_a_broadcast_of_the_selected_channel() -> None:
    """p opens the plan form (title defaults to the channel's, start to tomorrow's next full
    hour); a bad time is refused locally, an appliance refusal keeps the form, then it saves."""
    import datetime as dt

    fake = one_live()
    sid = next(iter(fake.streams))
    fake.errors["plan_broadcast"] = ApplianceError("starts: must be within the last day or "
                                                   "the next year", field="starts", status=400)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("p")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, PlanForm)
        assert form.query_one("#f-title", Input).value == "Friday jazz night"
        assert form.query_one("#f-starts", Input).value == "2023-11-15 23:00"  # UTC (conftest)
        form.query_one("#f-starts", Input).value = "next friday"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake.calls == [] and isinstance(app.screen, PlanForm)
        assert "2026-12-04 20:00" in str(app.screen.query_one("#err-starts", Label).render())
        app.screen.query_one("#f-title", Input).value = "Album night"
        app.screen.query_one("#f-starts", Input).value = "2023-12-01 20:00"
        await pilot.press("ctrl+s")  # refused by the appliance: the form stays, with why
        await pilot.pause()
        assert isinstance(app.screen, PlanForm)
        assert "next year" in str(app.screen.query_one("#err-starts", Label).render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        starts = dt.datetime(2023, 12, 1, 20, 0, tzinfo=dt.UTC).timestamp()
        assert fake.calls[-2:] == [("plan_broadcast", sid, "Album night", starts)] * 2
        assert isinstance(app.screen, MainScreen)
        assert fake.streams[sid].next_planned_title == "Album night"


async def test_chat_reply_hide_mute_pin() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    messages = fake.chat[sid]
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("c", *"welcome all", "enter")
        await pilot.pause()
        assert fake.calls[-1] == ("send_chat", sid, "welcome all", None)
        app.screen.query_one(ChatLog).focus()
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
        await drawn(pilot)
        hidden = make_chat(sid, 1, "sound is great", hidden=True)
        fake.emit(ChatEvent(sid, ChatChange.HIDDEN, hidden, at=T0))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert screen.model.chat[sid][hidden.id].hidden
        # A mute applies to every stream's chat at once.
        fake.emit(MuteEvent(hidden.pubkey, True, at=T0))
        await pilot.pause()
        assert screen.model.chat[sid][hidden.id].muted
        fake.emit(MuteEvent(hidden.pubkey, False, at=T0))
        await pilot.pause()
        assert not screen.model.chat[sid][hidden.id].muted


async def test_lost_socket_shows_banner_and_reconnects() -> None:
    fake = one_live()
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
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
        await drawn(pilot)
        before = redraws
        for i in range(200):
            fake.emit(ChatEvent(sid, ChatChange.NEW, make_chat(sid, 100 + i), at=T0))
        await pilot.pause()
        await pilot.pause(0.3)  # past MIN_REDRAW_INTERVAL: the coalesced redraw has run
        assert redraws - before < 20
        assert app.screen.query_one(ChatLog).message_count == 200


async def test_enter_on_the_key_screen_closes_it_without_copying() -> None:
    """Issue 12: "Done (Enter)" pressed "Copy key" instead; Enter now always means Done."""
    fake = FakeAdminClient(relays=[])
    app = DashboardApp(fake, clock=clock)
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("n", *"Jam", "ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, CredentialsScreen)
        await pilot.press("tab")  # whatever has the focus
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert copied == []


async def test_footer_keeps_its_keys_while_typing_chat() -> None:
    """Issue 12: the footer went blank while the chat input had the focus."""
    fake = one_live()
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("c", *"hi")
        await pilot.pause()
        from textual.widgets._footer import FooterKey

        shown = {key.description for key in app.screen.query(FooterKey)}
        assert {"Send", "Done"} <= shown
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.focused, StreamTable)


async def test_events_wrap_whole_and_name_their_stream() -> None:
    """Issue 12: long event lines lost their middle in a narrow pane, and entries did not
    say which stream; every word of the message is on screen, after the stream's title."""
    fake = with_errors()
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.pause()
        log = app.screen.query_one(LogPane)
        text = " ".join(strip.text.strip() for strip in log.lines)
        assert "[Garage band] unsupported video codec Sorenson H.263: use H.264 in OBS" in text
        assert all(strip.cell_length <= log.scrollable_content_region.width
                   for strip in log.lines)


async def test_chat_follows_new_messages_until_the_operator_scrolls_up() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        chat = app.screen.query_one(ChatLog)
        chat.focus()
        # The history arrives from a worker; on a loaded machine it may land after the focus.
        for _ in range(100):
            await pilot.pause(0.02)
            if chat.message_count == len(fake.chat[sid]):
                break
        assert chat.highlighted is not None
        assert chat.highlighted.id == fake.chat[sid][-1].id
        for i in range(30):
            fake.emit(ChatEvent(sid, ChatChange.NEW, make_chat(sid, 100 + i), at=T0))
        await pilot.pause()
        await pilot.pause(0.3)
        assert chat.highlighted is not None and chat.highlighted.content == "message 129"
        await pilot.press("home")
        first = chat.highlighted
        fake.emit(ChatEvent(sid, ChatChange.NEW, make_chat(sid, 200), at=T0))
        await pilot.pause()
        await pilot.pause(0.3)
        assert chat.highlighted == first  # the operator's place is kept
        await pilot.press("end")
        assert chat.highlighted is not None and chat.highlighted.content == "message 200"


async def test_chat_focused_before_its_history_arrives_follows_the_newest() -> None:
    """The operator may focus the chat before the history has loaded: once it arrives the
    cursor is on the newest message and keeps following (CI saw no cursor at all)."""
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield ChatLog()

    app = One()
    async with app.run_test(size=(60, 10)) as pilot:
        chat = app.query_one(ChatLog)
        chat.focus()
        await pilot.pause()
        assert chat.highlighted is None
        history = [make_chat("s", i) for i in range(5)]
        chat.set_messages(history)
        assert chat.highlighted is not None and chat.highlighted.id == history[-1].id
        chat.set_messages([*history, make_chat("s", 5)])
        assert chat.highlighted is not None and chat.highlighted.content == "message 5"
        chat.blur()
        await pilot.pause()
        chat.set_messages([*history, make_chat("s", 5), make_chat("s", 6)])
        assert chat.highlighted is not None and chat.highlighted.content == "message 5"


async def test_unknown_and_malformed_events_are_skipped() -> None:
    """A newer appliance's event kinds and a malformed frame cost nothing: the feed goes on
    (no reconnect banner) and the next valid event is applied."""
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        fake.emit_raw(b'event: broadcast\ndata: {"from": "a newer appliance"}\n\n')
        fake.emit_raw(b'event: viewers\ndata: {"stream_id": "' + sid.encode() + b'"}\n\n')
        fake.emit_raw(b"event: chat\ndata: not json\n\n")
        fake.emit(ViewersEvent(sid, current=41, peak=41, total=50, at=T0))
        await pilot.pause()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert screen.connected and not screen.query_one(ConnectionBanner).display
        assert screen.model.streams[sid].viewers == 41


async def test_ladder_in_the_form_and_a_dropped_rendition_in_the_caption() -> None:
    """Issue 15: the channel form edits the ladder ("off" clears it); a live stream's caption
    names its renditions and, once the CPU guard dropped one, says why."""
    from appliance.api.schema import LadderRenditionInfo
    from tui.widgets.viewer_graph import ViewerGraph

    fake = one_live()
    sid = next(iter(fake.streams))
    stream = fake.streams[sid]
    assert stream.ingest is not None
    notice = "ladder: this machine cannot encode the ladder in real time: dropped 360p"
    fake.streams[sid] = replace(stream, ladder=["480p", "360p"], ingest=replace(
        stream.ingest, ladder_notice=notice, ladder=[
            LadderRenditionInfo("480p", 854, 480, "live", 3.1, 0.12, 0, "libx264"),
            LadderRenditionInfo("360p", 640, 360, "dropped", 0.8, 2.4, 31, "libx264")]))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        caption = app.screen.query_one(ViewerGraph).caption
        assert "ladder 480p 360p✗ (libx264)" in caption and notice in caption
        await pilot.press("e")
        await pilot.pause()
        assert app.screen.query_one("#f-ladder", Input).value == "480p,360p"
        app.screen.query_one("#f-ladder", Input).value = "off"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake.calls[-1][2].ladder == ()


async def test_the_caption_names_the_ingest_protocol_and_address() -> None:
    """The selected live stream's caption says how and from where its publisher sends
    (``WHIP from 192.0.2.10``; IPv6 keeps its address, only the port goes); appliance text
    stays text: markup in it is shown, not applied."""
    from rich.text import Text

    from appliance.api.schema import StreamChange, StreamEvent
    from tui.testing import make_stream
    from tui.widgets.viewer_graph import ViewerGraph

    whip = make_stream(1, protocol="whip")
    assert whip.ingest is not None
    fake = FakeAdminClient([whip])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        graph = app.screen.query_one(ViewerGraph)
        assert isinstance(graph.caption, Text)
        assert graph.caption.plain.endswith(" · WHIP from 192.0.2.10")
        for ingest, shown in (
                (replace(whip.ingest, protocol="srt", remote="[2001:db8::7]:9000"),
                 "SRT from [2001:db8::7]"),
                (replace(whip.ingest, protocol="", remote="198.51.100.3:1935"),
                 " · from 198.51.100.3"),
                (replace(whip.ingest, protocol="[b]rtmp[/b]"), "[B]RTMP[/B] from 192.0.2.10")):
            fake.emit(StreamEvent(whip.id, StreamChange.UPDATED, T0,
                                  replace(whip, ingest=ingest)))
            for _ in range(100):
                await pilot.pause(0.02)
                if shown in graph.caption:
                    break
            assert shown in graph.caption, graph.caption
