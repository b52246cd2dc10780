"""The dashboard screen: the controller between the admin client and the widgets.

It owns the :class:`~tui.model.DashboardModel`, runs the feed worker (initial load, then the
admin API's event stream, reconnecting with backoff), turns widget intents into client
calls, and pushes model state down to widgets as attributes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from appliance.api.schema import (
    AdminEvent,
    AdminStream,
    ChatEvent,
    LogEvent,
    MuteEvent,
    RelayEvent,
    StreamEvent,
    ViewersEvent,
)
from tui.client import AdminClient, ApplianceError, ApplianceUnreachable, StreamDraft
from tui.format import duration, ingest_source, when
from tui.messages import (
    ChatLoaded,
    ChatReceived,
    ConnectionLost,
    LogAppended,
    MuteChanged,
    Redraw,
    RelayUpdated,
    Snapshot,
    StreamsUpdated,
    StreamUpdated,
    ViewersUpdated,
)
from tui.model import DashboardModel
from tui.screens.confirm import ConfirmScreen
from tui.screens.credentials import CredentialsScreen
from tui.screens.error import ErrorScreen
from tui.screens.goal_form import GoalForm
from tui.screens.grant import LINK_SECONDS, GrantScreen
from tui.screens.plan_form import PlanForm
from tui.screens.stream_form import StreamForm
from tui.widgets.banner import ConnectionBanner
from tui.widgets.chat_pane import ChatPane
from tui.widgets.log_pane import LogPane
from tui.widgets.relay_panel import RelayPanel
from tui.widgets.stream_table import StreamTable
from tui.widgets.viewer_graph import ViewerGraph

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
"""Health figures (bitrate, fps) have no events; re-read the list this often while live."""
MIN_REDRAW_INTERVAL = 0.1
"""Seconds between two redraws of the dashboard (bursts coalesce)."""
BACKOFF = (0.5, 1.0, 2.0, 5.0)


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_stream", "New"),
        Binding("e", "edit_stream", "Edit"),
        Binding("k", "rotate_key", "Rotate key"),
        Binding("x", "end_stream", "End"),
        Binding("p", "plan", "Plan"),
        Binding("c", "chat", "Chat"),
        Binding("escape", "focus_streams", "Streams", show=False),
        Binding("b", "blocks", "Blocks", show=False),
        # Hidden from the footer (80 columns are full); the README lists it.
        Binding("g", "goal", "Zap goal", show=False),
        Binding("m", "restream", "Restream", show=False),
        Binding("a", "analytics", "Analytics", show=False),
        Binding("v", "viewer_link", "Viewer link", show=False),
    ]

    def __init__(self, client: AdminClient, *, clock: Callable[[], float]) -> None:
        """
        Args:
            client: the admin API (the real socket client, or a fake in tests).
            clock: wall-clock seconds, for uptimes and ages.
        """
        super().__init__()
        self.client = client
        self.clock = clock
        self.model = DashboardModel()
        self.selected_id: str | None = None
        self.connected = False
        self._dirty: set[str] = set()
        self._last_redraw = 0.0
        self._redraw_scheduled = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner(id="banner")
        # In its own container: Textual re-renders every widget whose clip overlaps a dirty
        # region, and a table whose clip is the whole screen was re-rendered at every chat
        # line (a third of the TUI's CPU at 50 messages/s, issue 12).
        with Vertical(id="top"):
            yield StreamTable(id="streams")
        with Horizontal(id="lower"):
            with Vertical(id="left"):
                yield ViewerGraph(id="viewers")
                yield ChatPane(id="chat")
            with Vertical(id="right"):
                yield Label("Events", classes="pane-title")
                yield LogPane(id="log")
                yield Label("Relays", classes="pane-title")
                yield RelayPanel(id="relays")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(StreamTable).focus()
        self.query_one(ConnectionBanner).message = "Connecting to the appliance…"
        self._feed()
        self.set_interval(REFRESH_SECONDS, self._periodic)

    # ---- feed: appliance → messages ------------------------------------------------------

    @work(exclusive=True, group="feed")
    async def _feed(self) -> None:
        attempt = 0
        while True:
            try:
                streams = await self.client.list_streams()
                events = await self.client.list_events(100)
                relays = await self.client.list_relays()
                self.post_message(Snapshot(streams, events, relays))
                attempt = 0
                async for event in self.client.events():
                    self._dispatch(event)
                raise ApplianceUnreachable("the event stream ended", "Connection lost")
            except ApplianceError as exc:
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                self.post_message(ConnectionLost(exc.message, delay))
                await asyncio.sleep(delay)

    def _dispatch(self, event: AdminEvent) -> None:
        if isinstance(event, StreamEvent):
            if event.stream is not None:
                self.post_message(StreamUpdated(event.stream))
            else:  # deleted: re-read the list
                self._refresh_streams()
        elif isinstance(event, ViewersEvent):
            self.post_message(ViewersUpdated(event.stream_id, event.current, event.peak))
        elif isinstance(event, LogEvent):
            self.post_message(LogAppended(event))
        elif isinstance(event, ChatEvent):
            self.post_message(ChatReceived(event.stream_id, event.reason, event.message))
        elif isinstance(event, MuteEvent):
            self.post_message(MuteChanged(event.pubkey, event.muted))
        elif isinstance(event, RelayEvent):
            self.post_message(RelayUpdated(event.relay))

    def _periodic(self) -> None:
        if self.connected and any(s.status == "live" for s in self.model.streams.values()):
            self._refresh_streams()

    @work(exclusive=True, group="streams")
    async def _refresh_streams(self) -> None:
        try:
            self.post_message(StreamsUpdated(await self.client.list_streams()))
        except ApplianceError:
            pass  # the feed worker reports a lost connection

    @work(exclusive=True, group="chat")
    async def _load_chat(self, stream_id: str) -> None:
        try:
            self.post_message(ChatLoaded(stream_id, await self.client.list_chat(stream_id)))
        except ApplianceError:
            self.post_message(ChatLoaded(stream_id, None))

    # ---- messages → model → widgets --------------------------------------------------------

    @property
    def redraw_pending(self) -> bool:
        """A redraw is queued or waiting on its timer (tests wait for it before a snapshot)."""
        return self._redraw_scheduled

    def _mark(self, *parts: str) -> None:
        """Schedule a redraw of ``parts``; everything queued before it is drawn at once.

        At most one redraw per :data:`MIN_REDRAW_INTERVAL`: a quiet screen redraws at once,
        a burst (50 chat messages/s, 20 streams' viewer figures) coalesces into ≤ 10 frames/s.
        """
        self._dirty |= set(parts)
        if self._redraw_scheduled:
            return
        self._redraw_scheduled = True
        wait = self._last_redraw + MIN_REDRAW_INTERVAL - time.monotonic()
        if wait <= 0:
            self.post_message(Redraw("all"))
        else:
            self.set_timer(wait, lambda: self.post_message(Redraw("all")))

    def on_snapshot(self, message: Snapshot) -> None:
        self.connected = True
        self.query_one(ConnectionBanner).message = ""
        self.model.set_streams(message.streams)
        self.model.events.clear()
        self.model.events.extend(sorted(message.events, key=lambda e: (e.at, e.id)))
        self.model.relays = (None if message.relays is None
                             else {r.url: r for r in message.relays})
        if self.selected_id is not None:
            self._load_chat(self.selected_id)
        self._mark("streams", "log", "relays", "selected")

    def on_streams_updated(self, message: StreamsUpdated) -> None:
        self.model.set_streams(message.streams)
        self._mark("streams", "selected")

    def on_stream_updated(self, message: StreamUpdated) -> None:
        self.model.upsert_stream(message.stream)
        self._mark("streams", "selected")

    def on_viewers_updated(self, message: ViewersUpdated) -> None:
        self.model.set_viewers(message.stream_id, message.current, message.peak)
        self._mark("streams", "selected")

    def on_chat_loaded(self, message: ChatLoaded) -> None:
        self.model.set_chat(message.stream_id, message.messages)
        if message.stream_id == self.selected_id:
            self._mark("chat")

    def on_chat_received(self, message: ChatReceived) -> None:
        self.model.apply_chat(message.stream_id, message.message)
        if message.stream_id == self.selected_id:
            self._mark("chat")

    def on_mute_changed(self, message: MuteChanged) -> None:
        self.model.set_muted(message.pubkey, message.muted)
        self._mark("chat")

    def on_log_appended(self, message: LogAppended) -> None:
        self.model.events.append(message.event)
        self._mark("log")

    def on_relay_updated(self, message: RelayUpdated) -> None:
        self.model.set_relay(message.relay)
        self._mark("relays")

    def on_connection_lost(self, message: ConnectionLost) -> None:
        self.connected = False
        self.query_one(ConnectionBanner).message = (
            f"Connection to the appliance lost: {message.reason} "
            f"Reconnecting every {message.retry_in:g} s…")

    def on_redraw(self, message: Redraw) -> None:
        self._redraw_scheduled = False
        self._last_redraw = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        now = self.clock()
        if "streams" in dirty:
            self.query_one(StreamTable).show(tuple(self.model.ordered_streams()), now)
        if "selected" in dirty or "chat" in dirty:
            self._draw_selected()
        if "log" in dirty or "streams" in dirty:  # entries name their stream by title
            titles = {sid: s.title for sid, s in self.model.streams.items()}
            self.query_one(LogPane).show(tuple(self.model.events), titles)
        if "relays" in dirty:
            self.query_one(RelayPanel).show(
                None if self.model.relays is None else tuple(self.model.relays.values()), now)

    def _draw_selected(self) -> None:
        stream = self.model.streams.get(self.selected_id or "")
        graph = self.query_one(ViewerGraph)
        chat = self.query_one(ChatPane)
        if stream is None:
            graph.caption = "No channel selected"
            graph.history = ()
            chat.stream_label = ""
            chat.messages = ()
            return
        up = (f", up {duration(self.clock() - stream.started_at)}"
              if stream.status == "live" and stream.started_at else "")
        warning = ""
        if stream.ingest is not None and stream.ingest.ladder:
            # The quality ladder's renditions, a dropped one marked (the CPU guard shed it).
            warning += " · ladder " + " ".join(
                r.name + ("✗" if r.state == "dropped" else "") for r in stream.ingest.ladder
            ) + f" ({stream.ingest.ladder[0].encoder})"  # the encoder found at start
        if stream.ingest is not None and stream.ingest.ladder_notice and any(
                r.state == "dropped" for r in stream.ingest.ladder):
            warning += f" · ⚠ {stream.ingest.ladder_notice}"
        elif stream.ingest is not None and stream.ingest.verdict_reasons:
            # The first reason, with the OBS setting that fixes it (all are in the event log).
            warning += f" · ⚠ {stream.ingest.verdict_reasons[0]}"
        if stream.restream and stream.status == "live":
            live = sum(t.state.value == "live" for t in stream.restream)
            up += f" · restream {live}/{len(stream.restream)}"
        if stream.status == "live":
            caption = Text(f"{stream.viewers} watching, peak {stream.peak_viewers}{up}")
            if stream.ingest is not None:
                caption.append(" · ").append_text(ingest_source(stream.ingest))
            graph.caption = caption.append(warning)
        elif stream.next_planned_at is not None:  # the time first: it must fit at 80 columns
            graph.caption = (f"Next: {when(stream.next_planned_at)} · "
                             f"{stream.next_planned_title or stream.title}")
        else:
            graph.caption = f"Off air · peak {stream.peak_viewers} last time"
        graph.history = tuple(self.model.viewer_history.get(stream.id, ()))
        chat.stream_label = stream.title
        chat.available = not self.model.chat_unavailable
        chat.messages = tuple(self.model.chat_for(stream.id))

    @on(StreamTable.Selected)
    def _selected(self, message: StreamTable.Selected) -> None:
        self.selected_id = message.stream_id
        if message.stream_id is not None:
            self._load_chat(message.stream_id)
        self._mark("selected")

    # ---- intents → client ------------------------------------------------------------------

    def _selected_stream(self) -> AdminStream | None:
        stream = self.model.streams.get(self.selected_id or "")
        if stream is None:
            self.notify("Select a channel first (or press n to create one)", severity="warning")
        return stream

    def _report(self, exc: ApplianceError) -> None:
        if isinstance(exc, ApplianceUnreachable):
            self.notify(exc.message, title=exc.title, severity="error", markup=False)
        else:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))

    async def _form_loop(self, stream: AdminStream | None) -> None:
        draft = (StreamDraft(stream.title, stream.summary, tuple(stream.tags), stream.image,
                             stream.record, stream.retention_days, tuple(stream.ladder))
                 if stream else None)
        error: tuple[str | None, str] | None = None
        while True:
            form = StreamForm(draft, editing=stream is not None, error=error,
                              visibility=stream.visibility if stream else "public")
            result = await self.app.push_screen_wait(form)
            if result is None:
                return
            try:
                if stream is None:
                    creds = await self.client.create_stream(result)
                    await self.app.push_screen(CredentialsScreen(creds, "Channel created"))
                    self._refresh_streams()
                else:
                    self.model.upsert_stream(await self.client.update_stream(stream.id, result))
                    self._mark("streams", "selected")
                    self.notify(f"Saved {result.title!r}", markup=False)
                return
            except ApplianceError as exc:
                if exc.status == 400:
                    draft, error = result, (exc.field, exc.message)
                    continue
                self._report(exc)
                return

    @work(group="intent")
    async def action_new_stream(self) -> None:
        await self._form_loop(None)

    @work(group="intent")
    async def action_edit_stream(self) -> None:
        stream = self._selected_stream()
        if stream is not None:
            await self._form_loop(stream)

    @work(group="intent")
    async def action_rotate_key(self) -> None:
        stream = self._selected_stream()
        if stream is None:
            return
        ok = await self.app.push_screen_wait(ConfirmScreen(
            f"Rotate the key of {stream.title!r}?",
            "The old key stops working at once; OBS needs the new one."))
        if not ok:
            return
        try:
            creds = await self.client.rotate_key(stream.id)
        except ApplianceError as exc:
            self._report(exc)
            return
        await self.app.push_screen(CredentialsScreen(creds, "New key for"))

    @work(group="intent")
    async def action_viewer_link(self) -> None:
        """A 24 h viewer link (grant) for the selected channel (issue 14 §1)."""
        stream = self._selected_stream()
        if stream is None:
            return
        try:
            grant = await self.client.create_grant(stream.id, LINK_SECONDS)
        except ApplianceError as exc:
            self._report(exc)
            return
        await self.app.push_screen(GrantScreen(grant, stream.title))

    @work(group="intent")
    async def action_end_stream(self) -> None:
        stream = self._selected_stream()
        if stream is None:
            return
        if stream.status != "live":
            self.notify(f"{stream.title!r} is not live", markup=False)
            return
        ok = await self.app.push_screen_wait(ConfirmScreen(
            f"End the broadcast of {stream.title!r} now?",
            "The publisher is disconnected. The channel's key keeps working: the next "
            "publish starts a new broadcast."))
        if not ok:
            return
        try:
            self.model.upsert_stream(await self.client.end_stream(stream.id))
        except ApplianceError as exc:
            self._report(exc)
            return
        self._mark("streams", "selected")

    @work(group="intent")
    async def action_plan(self) -> None:
        """Plan a broadcast of the selected channel (announced on Nostr with its start)."""
        stream = self._selected_stream()
        if stream is None:
            return
        # Default: the next full hour, a day from now.
        default = (int(self.clock()) // 3600 + 25) * 3600.0
        draft = None
        error: tuple[str | None, str] | None = None
        while True:
            result = await self.app.push_screen_wait(
                PlanForm(stream.title, default_start=default, draft=draft, error=error))
            if result is None:
                return
            try:
                await self.client.plan_broadcast(stream.id, result.title, result.starts)
            except ApplianceError as exc:
                if exc.status == 400:
                    draft, error = result, (exc.field, exc.message)
                    continue
                self._report(exc)
                return
            self.notify(f"Planned {result.title!r} for {when(result.starts)}", markup=False)
            self._refresh_streams()
            return

    @work(group="intent")
    async def action_goal(self) -> None:
        """Set the zap goal (NIP-75) of the selected channel's live or latest broadcast, as
        ``hearth nostr goal`` does (issue 13: the host sets it from the TUI)."""
        stream = self._selected_stream()
        if stream is None:
            return
        try:
            current = await self.client.get_goal(stream.id)
        except ApplianceError as exc:
            self._report(exc)
            return
        draft = None
        error: tuple[str | None, str] | None = None
        while True:
            result = await self.app.push_screen_wait(
                GoalForm(stream.title, current, draft=draft, error=error))
            if result is None:
                return
            try:
                goal = await self.client.set_goal(stream.id, result.sats, result.title)
            except ApplianceError as exc:
                if exc.status == 400:
                    draft, error = result, (exc.field, exc.message)
                    continue
                self._report(exc)
                return
            # markup=False: the title is the operator's text, not Textual markup.
            self.notify(f"Zap goal published: {goal.title}: {goal.amount_msats // 1000:,} sats",
                        markup=False)
            return

    def action_restream(self) -> None:
        """The selected channel's simulcast targets (issue 16 §1)."""
        from tui.screens.restream import RestreamScreen

        stream = self._selected_stream()
        if stream is not None:
            self.app.push_screen(RestreamScreen(self.client, stream.id, stream.title))

    @work(group="intent")
    async def action_blocks(self) -> None:
        """Show addresses blocked for wrong stream keys and offer to lift them (issue 9 §3)."""
        try:
            blocks = await self.client.list_blocks()
        except ApplianceError as exc:
            self._report(exc)
            return
        if not blocks:
            self.notify("No address is blocked for wrong stream keys")
            return
        listed = ", ".join(f"{b.address} ({b.failures} wrong keys)" for b in blocks[:5])
        more = f" and {len(blocks) - 5} more" if len(blocks) > 5 else ""
        ok = await self.app.push_screen_wait(ConfirmScreen(
            f"Lift {len(blocks)} block(s)?",
            f"Blocked for wrong stream keys: {listed}{more}. A block stops wrong guesses "
            "only; the correct key is always accepted."))
        if not ok:
            return
        try:
            for b in blocks:
                await self.client.lift_block(b.address)
        except ApplianceError as exc:
            self._report(exc)
            return
        self.notify(f"Lifted {len(blocks)} block(s)")

    def action_analytics(self) -> None:
        """The selected channel's audience figures (docs/analytics.md)."""
        from tui.screens.analytics import AnalyticsScreen

        stream = self._selected_stream()
        if stream is not None:
            self.app.push_screen(AnalyticsScreen(self.client, stream.id))

    def action_chat(self) -> None:
        self.query_one(ChatPane).action_compose()

    def action_focus_streams(self) -> None:
        self.query_one(StreamTable).focus()

    @on(ChatPane.SendRequested)
    def _send(self, message: ChatPane.SendRequested) -> None:
        if self.selected_id is not None:
            self._call(self.client.send_chat, self.selected_id, message.content,
                       message.reply_to)

    @on(ChatPane.ModerationRequested)
    def _moderate(self, message: ChatPane.ModerationRequested) -> None:
        m = message.message
        if message.action == "hide":
            self._call(self.client.hide_message, m.stream_id, m.id)
        elif message.action == "pin":
            self._call(self.client.pin_message, m.stream_id, m.id)
        elif message.action == "mute":
            self._call(self.client.mute_pubkey, m.pubkey)

    @work(group="intent")
    async def _call(self, method: Any, *args: Any) -> None:
        try:
            await method(*args)
        except ApplianceError as exc:
            if exc.status == 404:
                self.notify("Chat moderation is not available on this appliance",
                            severity="warning")
            else:
                self._report(exc)
