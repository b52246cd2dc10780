"""Recordings: every broadcast's recording, with keep/delete (``R`` from the dashboard).

Shows state (and why a recording stopped), length, size, whether it is kept from retention and
how old its newest thumbnail is (a terminal cannot show the picture; the age says whether
thumbnails are being made). ``k`` toggles keep, ``d`` deletes after a confirmation, ``r``
refreshes, ``Esc`` goes back.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from appliance.api.schema import AdminRecording
from tui.client import AdminClient, ApplianceError
from tui.format import duration
from tui.screens.confirm import ConfirmScreen
from tui.screens.error import ErrorScreen


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _thumb(r: AdminRecording) -> str:
    if r.thumbnail_age is None:
        return "—"
    age = int(r.thumbnail_age)
    return f"{age} s ago" if age < 120 else f"{age // 60} min ago"


class RecordingsScreen(Screen[None]):
    """The recordings list; talks to the appliance through the app's client."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "keep", "Keep/unkeep"),
        Binding("d", "delete", "Delete"),
        Binding("r", "refresh", "Refresh"),
        Binding("a", "analytics", "Analytics"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, client: AdminClient) -> None:
        super().__init__()
        self.client = client
        self.recordings: list[AdminRecording] = []

    def compose(self) -> ComposeResult:
        yield Label("Recordings", classes="dialog-title")
        table: DataTable[str] = DataTable(id="recordings", cursor_type="row", zebra_stripes=True)
        table.add_columns("Broadcast", "Title", "State", "Length", "Size", "Keep", "Thumbnail")
        yield table
        yield Label("", id="recording-error")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    @work(exclusive=True, group="recordings")
    async def action_refresh(self) -> None:
        try:
            self.recordings = await self.client.list_recordings()
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        table = self.query_one("#recordings", DataTable)
        table.clear()
        for r in self.recordings:
            cells = (r.broadcast_id, r.title or "—", r.state, duration(r.duration),
                     _size(r.bytes), "yes" if r.kept else "", _thumb(r))
            table.add_row(*(Text(c) for c in cells), key=r.broadcast_id)  # titles: no markup
        self._show_error()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_error()

    def _show_error(self) -> None:
        r = self._selected(quiet=True)
        self.query_one("#recording-error", Label).update(
            Text(f"Stopped: {r.error}" if r is not None and r.error else ""))

    def _selected(self, quiet: bool = False) -> AdminRecording | None:
        table = self.query_one("#recordings", DataTable)
        if not self.recordings or table.cursor_row < 0 or table.cursor_row >= len(
                self.recordings):
            if not quiet:
                self.notify("No recording selected", severity="warning")
            return None
        return self.recordings[table.cursor_row]

    def action_analytics(self) -> None:
        """The selected recording's broadcast: its audience, live and replayed."""
        from tui.screens.analytics import AnalyticsScreen

        r = self._selected()
        if r is not None and r.channel_id is not None:
            self.app.push_screen(AnalyticsScreen(self.client, r.channel_id,
                                                 broadcast_id=r.broadcast_id))

    @work(group="intent")
    async def action_keep(self) -> None:
        r = self._selected()
        if r is None:
            return
        try:
            await self.client.keep_recording(r.broadcast_id, not r.kept)
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self.notify("Kept: retention will not delete it" if not r.kept
                    else "No longer kept from retention")
        self.action_refresh()

    @work(group="intent")
    async def action_delete(self) -> None:
        r = self._selected()
        if r is None:
            return
        ok = await self.app.push_screen_wait(ConfirmScreen(
            f"Delete the recording of {r.title or r.broadcast_id!r}?",
            f"{_size(r.bytes)} of disk are freed; this cannot be undone."))
        if not ok:
            return
        try:
            await self.client.delete_recording(r.broadcast_id)
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self.notify("Recording deleted")
        self.action_refresh()
