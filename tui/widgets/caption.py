"""A one-line caption whose updates repaint only itself.

``Label.update`` asks Textual for a new layout of the whole screen (its size may change);
a caption with a fixed height of one line never needs one, which matters when it changes
with every viewer-count event (issue 12: TUI CPU).
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class Caption(Widget):
    """Set :attr:`text` (a plain string or styled :class:`~rich.text.Text`)."""

    DEFAULT_CSS = """
    Caption { height: 1; width: 1fr; }
    """

    text: reactive[str | Text] = reactive("", layout=False)

    def __init__(self, text: str | Text = "", *, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(Caption.text, text)

    def render(self) -> Text:
        text = self.text if isinstance(self.text, Text) else Text(self.text)
        text.no_wrap = True
        text.overflow = "ellipsis"
        return text
