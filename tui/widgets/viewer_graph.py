"""Viewer sparkline of the selected stream."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Sparkline

from tui.widgets.caption import Caption


class ViewerGraph(Vertical):
    """Set :attr:`history` (oldest first) and :attr:`caption`."""

    DEFAULT_CSS = """
    ViewerGraph { height: 3; }
    ViewerGraph > Sparkline { height: 2; }
    """

    history: reactive[tuple[int, ...]] = reactive(tuple, init=False, repaint=False)
    caption: reactive[str | Text] = reactive("", init=False, repaint=False)

    def compose(self) -> ComposeResult:
        yield Caption("No stream selected", id="viewer-caption")
        yield Sparkline([], summary_function=max)

    def watch_history(self, history: tuple[int, ...]) -> None:
        # Sparkline needs at least two points to draw a line; a flat start is the truth.
        data = list(history) if len(history) > 1 else list(history) * 2
        self.query_one(Sparkline).data = data

    def watch_caption(self, caption: str | Text) -> None:
        self.query_one("#viewer-caption", Caption).text = caption
