"""An error from the appliance, in a modal (harlequin's ``ApplianceError`` pattern)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ErrorScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self._title = title
        self._message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error"):
            yield Label(Text(self._title), classes="dialog-title")
            yield Label(Text(self._message), classes="dialog-detail")
            yield Button("Close", id="close")

    def on_button_pressed(self) -> None:
        self.dismiss()
