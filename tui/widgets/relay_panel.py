"""Nostr relays: connection state, last accepted publish, failures, outbox depth."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from appliance.api.schema import RelayInfo
from tui import format as fmt

_STATE_STYLE = {"connected": "green", "connecting": "yellow", "disconnected": "yellow",
                "failed": "bold red"}


class RelayPanel(DataTable[Text | str]):
    """Set :attr:`relays` (``None``: the appliance does not report relays) and :attr:`now`."""

    relays: reactive[tuple[RelayInfo, ...] | None] = reactive(None, init=False)
    now: reactive[float] = reactive(0.0, init=False)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="none", show_cursor=False)

    def on_mount(self) -> None:
        self.add_columns("Relay", "State", "Last OK", "Fail", "Outbox")
        self._render_rows()

    def watch_relays(self) -> None:
        self._render_rows()

    def watch_now(self) -> None:
        self._render_rows()

    def _render_rows(self) -> None:
        self.clear()
        if self.relays is None:
            self.add_row(Text("relays unavailable", style="dim"), "", "", "", "")
            return
        if not self.relays:
            self.add_row(Text("no relays (local chat only)", style="dim"), "", "", "", "")
            return
        for r in self.relays:
            url = r.url.removeprefix("wss://").removeprefix("ws://")
            self.add_row(Text(url, overflow="ellipsis", no_wrap=True),
                         Text(r.state, style=_STATE_STYLE.get(r.state, "")),
                         fmt.ago(self.now, r.last_ok_at), str(r.failures), str(r.outbox_depth),
                         key=r.url)
