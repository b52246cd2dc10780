"""Analytics of a channel (``a`` on the dashboard) or of one broadcast (``a`` on recordings).

Shows one broadcast's concurrent viewers per minute as a sparkline, its peak (and when),
unique viewers, watch time, chat, the split by player kind and device class, and the
channel's last 30 days rolled up. ``[`` and ``]`` step to the previous and next broadcast of
the channel, ``r`` refreshes, ``Esc`` goes back. Titles are the operator's text: shown as
:class:`rich.text.Text`, never markup. Figures: docs/analytics.md.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Sparkline, Static

from appliance.api.schema import (
    AnalyticsSplit,
    BroadcastAnalytics,
    ChannelAnalytics,
    DeviceClass,
    PlayerKind,
)
from tui.client import AdminClient, ApplianceError
from tui.format import duration
from tui.screens.error import ErrorScreen

KIND_NAMES = {PlayerKind.LLHLS: "LL-HLS", PlayerKind.HLS: "HLS", PlayerKind.WEBRTC: "WebRTC",
              PlayerKind.VOD: "Recording"}
DAYS = 30


def _at(ts: float | None) -> str:
    return time.strftime("%d %b %H:%M", time.localtime(ts)) if ts else "—"


def split_rows(split: list[AnalyticsSplit], attr: str) -> list[tuple[str, str, str, str]]:
    """(name, sessions, viewers, watched) per player kind (``attr`` "kind") or device class
    ("device"); bots are marked: they count in no viewer figure."""
    values: list[PlayerKind] | list[DeviceClass] = (
        list(PlayerKind) if attr == "kind" else list(DeviceClass))
    rows: list[tuple[str, str, str, str]] = []
    for v in values:
        match = [s for s in split if getattr(s, attr) == v]
        if not match:
            continue
        name = KIND_NAMES[v] if isinstance(v, PlayerKind) else v.value
        if v is DeviceClass.BOT:
            name += " (excl.)"
        rows.append((name, str(sum(s.sessions for s in match)),
                     str(sum(s.viewers for s in match)),
                     duration(sum(s.watch_seconds for s in match))))
    return rows


class AnalyticsScreen(Screen[None]):
    """Audience figures; talks to the appliance through the app's client."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "older", "Older"),
        Binding("right_square_bracket", "newer", "Newer"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    DEFAULT_CSS = """
    AnalyticsScreen { layout: vertical; }
    AnalyticsScreen #analytics-graph { height: auto; margin: 0 1; }
    AnalyticsScreen #analytics-sparkline { height: 3; }
    AnalyticsScreen .analytics-text { padding: 0 1; height: auto; }
    AnalyticsScreen #analytics-split { height: auto; margin: 0 1; }
    AnalyticsScreen #analytics-split DataTable { width: 1fr; height: auto; max-height: 8; }
    """

    def __init__(self, client: AdminClient, channel_id: str, *,
                 broadcast_id: str | None = None) -> None:
        super().__init__()
        self.client = client
        self.channel_id = channel_id
        self.broadcast_id = broadcast_id
        self.channel: ChannelAnalytics | None = None
        self.broadcast: BroadcastAnalytics | None = None

    def compose(self) -> ComposeResult:
        yield Label("Analytics", id="analytics-title", classes="dialog-title")
        yield Static("", id="analytics-broadcast", classes="analytics-text")
        with Vertical(id="analytics-graph"):
            yield Static("", id="analytics-graph-caption")
            yield Sparkline([0, 0], summary_function=max, id="analytics-sparkline")
        yield Static("", id="analytics-figures", classes="analytics-text")
        with Horizontal(id="analytics-split"):
            for attr, head in (("kind", "Player"), ("device", "Device")):
                table: DataTable[str] = DataTable(id=f"analytics-{attr}", cursor_type="none",
                                                  zebra_stripes=True)
                table.add_columns(head, "Sess", "Uniq", "Watched")
                yield table
        yield Static("", id="analytics-channel", classes="analytics-text")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    @work(exclusive=True, group="analytics")
    async def action_refresh(self) -> None:
        try:
            self.channel = await self.client.channel_analytics(self.channel_id, DAYS)
            if self.broadcast_id is None and self.channel.per_broadcast:
                self.broadcast_id = self.channel.per_broadcast[0].broadcast_id
            self.broadcast = (await self.client.broadcast_analytics(self.broadcast_id)
                              if self.broadcast_id else None)
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self._show()

    def _step(self, delta: int) -> None:
        lines = self.channel.per_broadcast if self.channel else []
        ids = [x.broadcast_id for x in lines]  # newest first
        if self.broadcast_id not in ids:
            return
        i = ids.index(self.broadcast_id) + delta
        if 0 <= i < len(ids):
            self.broadcast_id = ids[i]
            self.action_refresh()

    def action_older(self) -> None:
        self._step(1)

    def action_newer(self) -> None:
        self._step(-1)

    def _show(self) -> None:
        c, b = self.channel, self.broadcast
        title = Text("Analytics — ")
        title.append(c.title if c else self.channel_id)
        self.query_one("#analytics-title", Label).update(title)
        self._show_broadcast(b)
        for attr in ("kind", "device"):
            table = self.query_one(f"#analytics-{attr}", DataTable)
            table.clear()
            for row in split_rows(b.split if b else [], attr):
                table.add_row(*(Text(cell) for cell in row))
        if c is not None:
            self.query_one("#analytics-channel", Static).update(Text(
                f"Last {c.days} days: {c.broadcasts} broadcasts, peak {c.peak}, "
                f"{c.unique_viewers} viewers, watched {duration(c.watch_seconds)} "
                f"(avg {duration(c.average_watch_seconds)}), {c.chat_messages} chat messages"))

    def _show_broadcast(self, b: BroadcastAnalytics | None) -> None:
        head = self.query_one("#analytics-broadcast", Static)
        caption = self.query_one("#analytics-graph-caption", Static)
        figures = self.query_one("#analytics-figures", Static)
        spark = self.query_one("#analytics-sparkline", Sparkline)
        if b is None:
            head.update(Text("No broadcast in the last 30 days."))
            caption.update("")
            figures.update("")
            spark.data = [0, 0]
            return
        line = Text(f"Broadcast {b.broadcast_id} [{b.status}] ")
        line.append(b.title)
        line.append(f"  started {_at(b.started_at)}, ended {_at(b.ended_at)}")
        head.update(line)
        points = [m.viewers for m in b.timeline]
        spark.data = points if len(points) > 1 else (points or [0]) * 2
        caption.update(Text(f"Concurrent viewers per minute ({len(points)} min, "
                            f"max {max(points, default=0)})"))
        now = f"{b.current_viewers} watching now · " if b.status == "live" else ""
        replay = (f"\nRecording: {b.vod_sessions} sessions by {b.vod_viewers} viewers, "
                  f"{duration(b.vod_watch_seconds)}" if b.vod_sessions else "")
        figures.update(Text(
            f"{now}Peak {b.peak} at {_at(b.peak_at)} · {b.unique_viewers} unique viewers\n"
            f"Watched {duration(b.watch_seconds)} in {b.sessions} sessions "
            f"(average {duration(b.average_watch_seconds)}) · "
            f"Chat {b.chat_messages} messages from {b.chatters} chatters{replay}"))
