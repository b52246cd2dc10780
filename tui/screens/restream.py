"""Simulcast targets of one channel (``m`` on the dashboard's selected channel).

One row per target: state (idle, connecting, live, backoff, failed), bitrate, data sent,
frames dropped because the target fell behind, connections, the server URL with the key
redacted; the selected target's last error under the table. Refreshes every 2 s; ``r``
refreshes now, ``Esc`` goes back. Adding and removing targets is the CLI's
(``hearth channel restream add|remove``): the key is typed there, never shown here.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from appliance.api.schema import RestreamTarget, safe_text
from tui.client import AdminClient, ApplianceError

REFRESH_SECONDS = 2.0


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


class RestreamScreen(Screen[None]):
    """A channel's restream targets; reads them with the channel list (``restream`` field)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, client: AdminClient, channel_id: str, title: str) -> None:
        super().__init__()
        self.client = client
        self.channel_id = channel_id
        self.channel_title = title
        self.targets: list[RestreamTarget] = []

    def compose(self) -> ComposeResult:
        yield Label(Text(f"Restream: {safe_text(self.channel_title, 60)}"),
                    classes="dialog-title")
        table: DataTable[str] = DataTable(id="targets", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "State", "kbit/s", "Sent", "Dropped", "Conn", "Target")
        yield table
        yield Label("", id="target-error")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    @work(exclusive=True, group="restream")
    async def action_refresh(self) -> None:
        try:
            streams = await self.client.list_streams()
        except ApplianceError as exc:
            self.query_one("#target-error", Label).update(Text(exc.message))
            return
        stream = next((s for s in streams if s.id == self.channel_id), None)
        self.show(stream.restream if stream is not None else [])

    def show(self, targets: list[RestreamTarget]) -> None:
        self.targets = targets
        table = self.query_one("#targets", DataTable)
        row = table.cursor_row
        table.clear()
        for t in targets:
            # Text, not str: a DataTable parses str cells as markup (docs/threat-model.md §logs).
            cells = (str(t.id), t.state.value, f"{t.bitrate_kbps:.0f}", _size(t.bytes_sent),
                     str(t.frames_dropped), str(t.connects),
                     f"{safe_text(t.server_url, 60)}/{t.key}")
            table.add_row(*(Text(c) for c in cells), key=str(t.id))
        if targets:
            table.move_cursor(row=min(row, len(targets) - 1))
            self._show_error()
        else:
            self.query_one("#target-error", Label).update(
                f"No targets. Add one with: hearth channel restream add {self.channel_id} URL")

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_error()

    def _show_error(self) -> None:
        table = self.query_one("#targets", DataTable)
        t = self.targets[table.cursor_row] if 0 <= table.cursor_row < len(self.targets) \
            else None
        text = ""
        if t is not None and t.last_error:
            again = f" ({t.failures} failed in a row)" if t.failures else ""
            text = f"Last error{again}: {safe_text(t.last_error, 200)}"
        self.query_one("#target-error", Label).update(Text(text))
