"""The event/error log: bad key attempts, codec refusals, relay failures, reconnects.

Each entry names its stream (issue 12: entries did not say which stream) and wraps at the
pane's width; on a resize every entry is wrapped again (``RichLog`` wraps once, at write
time, at no less than ``min_width``: the default of 78 cut the middle out of each line in a
34-column pane).
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import RichLog

from appliance.api.schema import LogEvent
from tui import format as fmt

_LEVEL = {"error": ("ERROR", "bold red"), "warning": ("WARN", "yellow"),
          "info": ("info", "green"), "debug": ("debug", "dim")}
TITLE_CHARS = 24
"""Stream titles are shortened to this many characters in entries."""


def render_entry(e: LogEvent, titles: dict[str, str]) -> Text:
    """``22:03:20 WARN auth [Friday jazz] refused stream key …`` as styled text."""
    label, style = _LEVEL.get(e.level, (e.level, ""))
    text = Text.assemble((fmt.clock_time(e.at) + " ", "dim"), (label, style), " ",
                         (e.kind, "bold"), " ")
    if e.stream_id:
        title = titles.get(e.stream_id, e.stream_id)
        if len(title) > TITLE_CHARS:
            title = title[:TITLE_CHARS - 1] + "…"
        text.append(f"[{title}] ", "cyan")
    text.append(e.message)
    return text


class LogPane(RichLog):
    """Call :meth:`show` with the entries (oldest first) and stream titles by id.

    Only new entries are written (append-only) unless the titles or history changed.
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, max_lines=500, wrap=True, markup=False, auto_scroll=True,
                         min_width=1)
        self._shown: tuple[LogEvent, ...] = ()
        self._titles: dict[str, str] = {}
        self._width = 0
        self._drawn = False

    def show(self, entries: tuple[LogEvent, ...], titles: dict[str, str]) -> None:
        n = len(self._shown)
        relevant = {e.stream_id for e in entries if e.stream_id}
        changed_titles = any(self._titles.get(k) != titles.get(k) for k in relevant)
        self._titles = dict(titles)
        if entries == self._shown and not changed_titles and self._drawn:
            return
        if changed_titles or not n or entries[:n] != self._shown:
            self._rewrite(entries)
            return
        for e in entries[n:]:
            self.write(render_entry(e, self._titles), shrink=True)
        self._shown = entries

    def _rewrite(self, entries: tuple[LogEvent, ...]) -> None:
        self.clear()
        for e in entries:
            self.write(render_entry(e, self._titles), shrink=True)
        if not entries:
            self.write(Text("No events yet.", style="dim"))
        self._shown = entries
        self._drawn = True

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        width = self.scrollable_content_region.width
        if width and width != self._width:
            self._width = width
            self._rewrite(self._shown)
