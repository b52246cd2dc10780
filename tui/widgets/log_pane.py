"""The event/error log: bad key attempts, codec refusals, relay failures, reconnects."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import RichLog

from appliance.api.schema import LogEvent
from tui import format as fmt

_LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": "", "debug": "dim"}


class LogPane(RichLog):
    """Set :attr:`entries` (oldest first); only new entries are written (append-only)."""

    entries: reactive[tuple[LogEvent, ...]] = reactive(tuple, init=False)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, max_lines=500, wrap=True, markup=False, auto_scroll=True)
        self._shown: tuple[LogEvent, ...] = ()

    def watch_entries(self, entries: tuple[LogEvent, ...]) -> None:
        n = len(self._shown)
        if entries[:n] != self._shown or not n:
            self.clear()
            new = entries
        else:
            new = entries[n:]
        for e in new:
            line = Text.assemble(
                (fmt.clock_time(e.at) + " ", "dim"),
                (f"{e.level.upper():7} ", _LEVEL_STYLE.get(e.level, "")),
                (f"{e.kind}: ", "bold"), e.message)
            self.write(line)
        if not entries:
            self.write(Text("No events yet.", style="dim"))
        self._shown = entries
