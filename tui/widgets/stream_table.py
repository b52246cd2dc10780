"""The channels table: one row per channel with its live broadcast's figures and a health
verdict (``status`` says live, planned or off air).

Columns are chosen for the width (issue 12: at 80×24 the keyframe column was cut off):
the health verdict and keyframe interval always show; fps and resolution only on wide
terminals, uptime and bitrate when there is room; the title takes what is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import DataTable

from appliance.api.schema import AdminStream
from tui import format as fmt


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    """Cell width without the one-cell padding on each side."""
    min_table: int
    """Shown only when the table's content is at least this wide."""


COLUMNS = (
    Column("title", "Title", 0, 0),
    Column("status", "Status", 7, 0),
    Column("viewers", "Viewers", 7, 0),
    Column("health", "Health", 11, 0),
    Column("gop", "Keyframe", 8, 0),
    Column("kbps", "kbit/s", 6, 62),
    Column("uptime", "Uptime", 7, 70),
    Column("fps", "fps", 4, 100),
    Column("res", "Resolution", 10, 110),
)
TITLE_MIN = 12
_HEALTH_STYLE = {"ok": "bold green", "warn": "bold yellow", "B-frames": "bold yellow",
                 "starting": "cyan", "idle": "dim", "ended": "dim"}


def _title(s: AdminStream) -> Text:
    """The title, after a marker for a channel that is not public (the operator must see at
    a glance what is hidden or needs a grant)."""
    text = Text(overflow="ellipsis", no_wrap=True)
    if s.visibility != "public":
        text.append(f"[{s.visibility}] ", style="bold magenta")
    text.append(s.title)
    return text


def columns_for(width: int) -> tuple[tuple[Column, ...], int]:
    """The columns that fit in ``width`` cells, and the title column's width."""
    chosen = [c for c in COLUMNS if width >= c.min_table]
    fixed = sum(c.width + 2 for c in chosen if c.key != "title")
    return tuple(chosen), max(TITLE_MIN, width - fixed - 2)  # 2: the title's padding


class StreamTable(DataTable[Text | str]):
    """Streams, live first. Call :meth:`show`; posts :class:`Selected`."""

    class Selected(Message):
        """The operator moved to another stream."""

        def __init__(self, stream_id: str | None) -> None:
            super().__init__()
            self.stream_id = stream_id

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._selected: str | None = None
        self._streams: tuple[AdminStream, ...] = ()
        self._now = 0.0
        self._layout: tuple[tuple[Column, ...], int] = ((), 0)
        self._cells: dict[str, list[Text | str]] = {}

    @property
    def selected_id(self) -> str | None:
        return self._selected

    @property
    def streams(self) -> tuple[AdminStream, ...]:
        return self._streams

    def show(self, streams: tuple[AdminStream, ...], now: float) -> None:
        """Draw ``streams`` (in this order) with ages and verdicts as of ``now``."""
        self._streams = streams
        self._now = now
        self._render_rows()

    def on_resize(self, event: events.Resize) -> None:
        # The content width (the event's size includes the border); one cell is kept for
        # the vertical scrollbar that appears with more rows than fit.
        layout = columns_for(self.content_region.width - 1)
        if layout != self._layout:
            self._layout = layout
            self.clear(columns=True)
            self._cells.clear()
            cols, title_width = layout
            for c in cols:
                self.add_column(c.label, key=c.key, width=c.width or title_width)
            self._render_rows(rebuild=True)

    def _row(self, s: AdminStream) -> list[Text | str]:
        i = s.ingest
        verdict = fmt.health(s, self._now)
        style = _HEALTH_STYLE.get(verdict, "bold red" if verdict == "no input" else "yellow")
        values: dict[str, Text | str] = {
            "title": _title(s),
            "status": Text(fmt.channel_status(s), style="bold" if s.status == "live" else "dim"),
            "viewers": f"{s.viewers}/{s.peak_viewers}",
            "health": Text(verdict, style=style),
            "gop": f"{i.keyframe_interval:.1f}s" if i and i.keyframe_interval else "-",
            "kbps": fmt.number(i.bitrate_kbps if i else None),
            "uptime": fmt.uptime(s, self._now),
            "fps": fmt.number(i.fps if i else None),
            "res": fmt.resolution(s),
        }
        # Text, not str: DataTable parses a str cell as markup on every render, and after any
        # update_cell it re-renders every visible cell (its caches key on an update count).
        return [v if isinstance(v, Text) else Text(v, no_wrap=True)
                for v in (values[c.key] for c in self._layout[0])]

    def _render_rows(self, *, rebuild: bool = False) -> None:
        if not self._layout[0]:
            return  # not sized yet: on_resize draws
        keep = self._selected
        wanted = [s.id for s in self._streams]
        current = [str(k.value) for k in self.rows]
        if current == wanted and not rebuild:
            # Same rows: update only the cells that changed (no jump, no flicker, and no
            # re-render of the rows whose figures did not move).
            for s in self._streams:
                old = self._cells.get(s.id, [])
                new = self._row(s)
                for c, value, before in zip(self._layout[0], new, old, strict=True):
                    if value != before:
                        self.update_cell(s.id, c.key, value)
                self._cells[s.id] = new
        else:
            self.clear()
            self._cells.clear()
            for s in self._streams:
                self._cells[s.id] = row = self._row(s)
                self.add_row(*row, key=s.id)
            if keep in wanted:
                self.move_cursor(row=wanted.index(keep), animate=False)
        if not wanted:
            self._select(None)
        elif keep not in wanted:
            self._select(wanted[min(self.cursor_row, len(wanted) - 1)])

    def _select(self, stream_id: str | None) -> None:
        if stream_id != self._selected:
            self._selected = stream_id
            self.post_message(self.Selected(stream_id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self._select(str(event.row_key.value))
