"""The streams table: one row per stream with its live figures and a health verdict."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from appliance.api.schema import AdminStream
from tui import format as fmt

COLUMNS = (("title", "Title"), ("status", "Status"), ("viewers", "Viewers"),
           ("health", "Health"), ("uptime", "Uptime"), ("kbps", "kbit/s"), ("fps", "fps"),
           ("res", "Resolution"), ("gop", "Keyframe"))
_HEALTH_STYLE = {"ok": "bold green", "warn": "bold yellow", "B-frames": "bold yellow",
                 "starting": "cyan", "idle": "dim", "ended": "dim"}


class StreamTable(DataTable[Text | str]):
    """Streams, live first. Set :attr:`streams` and :attr:`now`; posts :class:`Selected`."""

    streams: reactive[tuple[AdminStream, ...]] = reactive(tuple, init=False)
    now: reactive[float] = reactive(0.0, init=False)

    class Selected(Message):
        """The operator moved to another stream."""

        def __init__(self, stream_id: str | None) -> None:
            super().__init__()
            self.stream_id = stream_id

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._selected: str | None = None

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        return self._selected

    def watch_streams(self) -> None:
        self._render_rows()

    def watch_now(self) -> None:
        self._render_rows()

    def _row(self, s: AdminStream) -> list[Text | str]:
        i = s.ingest
        verdict = fmt.health(s, self.now)
        style = _HEALTH_STYLE.get(verdict, "bold red" if verdict == "no input" else "yellow")
        status = Text(s.status, style="bold" if s.status == "live" else "dim")
        return [
            Text(s.title, overflow="ellipsis", no_wrap=True), status,
            f"{s.viewers}/{s.peak_viewers}", Text(verdict, style=style),
            fmt.uptime(s, self.now), fmt.number(i.bitrate_kbps if i else None),
            fmt.number(i.fps if i else None), fmt.resolution(s),
            f"{i.keyframe_interval:.1f}s" if i and i.keyframe_interval else "-",
        ]

    def _render_rows(self) -> None:
        keep = self._selected
        wanted = [s.id for s in self.streams]
        current = [str(k.value) for k in self.rows]
        if current == wanted:  # same rows: update cells in place (no jump, no flicker)
            for s in self.streams:
                for (key, _), value in zip(COLUMNS, self._row(s), strict=True):
                    self.update_cell(s.id, key, value)
        else:
            self.clear()
            for s in self.streams:
                self.add_row(*self._row(s), key=s.id)
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
