"""Nostr relays: connection state, last accepted publish, failures, outbox depth.

Like the streams table, the columns fit the width: the URL, state and outbox depth always
show; the age of the last accepted publish and the failure count when there is room.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from appliance.api.schema import RelayInfo
from tui import format as fmt

_STATE_STYLE = {"connected": "green", "connecting": "yellow", "disconnected": "yellow",
                "failed": "bold red"}
# (key, label, width, shown when the table is at least this wide)
_COLUMNS = (("url", "Relay", 0, 0), ("state", "State", 10, 0), ("outbox", "Outbox", 6, 0),
            ("last_ok", "Last OK", 7, 48), ("failures", "Fail", 4, 56))
URL_MIN = 10


class RelayPanel(DataTable[Text | str]):
    """Call :meth:`show` with the relays (``None``: the appliance does not report relays)."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="none", show_cursor=False)
        self._relays: tuple[RelayInfo, ...] | None = None
        self._now = 0.0
        self._keys: tuple[str, ...] = ()
        self._url_width = 0

    @property
    def relays(self) -> tuple[RelayInfo, ...] | None:
        return self._relays

    def show(self, relays: tuple[RelayInfo, ...] | None, now: float) -> None:
        self._relays = relays
        self._now = now
        self._render_rows()

    def on_resize(self, event: events.Resize) -> None:
        width = self.content_region.width - 1  # one cell for a vertical scrollbar
        cols = [c for c in _COLUMNS if width >= c[3]]
        url_width = max(URL_MIN, width - sum(c[2] + 2 for c in cols[1:]) - 2)
        keys = tuple(c[0] for c in cols)
        if (keys, url_width) != (self._keys, self._url_width):
            self._keys, self._url_width = keys, url_width
            self.clear(columns=True)
            for key, label, w, _ in cols:
                self.add_column(label, key=key, width=w or url_width)
            self._render_rows()

    def _render_rows(self) -> None:
        if not self._keys:
            return  # not sized yet
        self.clear()
        blank = [""] * (len(self._keys) - 1)
        if self._relays is None:
            self.add_row(Text("relays unavailable", style="dim"), *blank)
            return
        if not self._relays:
            self.add_row(Text("no relays (local chat only)", style="dim", no_wrap=True,
                              overflow="ellipsis"), *blank)
            return
        for r in self._relays:
            url = r.url.removeprefix("wss://").removeprefix("ws://")
            cells: dict[str, Text | str] = {
                "url": Text(url, overflow="ellipsis", no_wrap=True),
                "state": Text(r.state, style=_STATE_STYLE.get(r.state, "")),
                "outbox": str(r.outbox_depth),
                "last_ok": fmt.ago(self._now, r.last_ok_at),
                "failures": str(r.failures),
            }
            self.add_row(*(cells[k] for k in self._keys), key=r.url)
