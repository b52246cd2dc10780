"""The RTMP server URL and stream key, shown once after create or rotate, with OBS advice."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from appliance.api.schema import StreamCredentials


class CredentialsScreen(ModalScreen[None]):
    """Copy keys use OSC 52, which reaches the operator's clipboard through SSH and tmux."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "copy('server')", "Copy server"),
                Binding("k", "copy('key')", "Copy key"),
                Binding("w", "copy('watch')", "Copy watch link"),
                # Enter closes the screen whatever has focus (issue 12: it pressed "Copy key").
                Binding("enter", "dismiss", "Done", priority=True),
                Binding("escape", "dismiss", "Done", show=False)]

    def __init__(self, credentials: StreamCredentials, heading: str) -> None:
        super().__init__()
        self._c = credentials
        self._heading = heading

    def compose(self) -> ComposeResult:
        c = self._c
        with VerticalScroll(classes="dialog credentials"):
            yield Label(Text(f"{self._heading}: {c.title}"), classes="dialog-title")
            yield Label("Server (OBS: Settings → Stream → Service: Custom…)",
                        classes="field-label")
            yield Input(c.rtmp_url, id="server", select_on_focus=True, compact=True)
            yield Label("Stream key: shown once. Paste it into OBS now; if lost, rotate it.",
                        classes="field-label warning")
            yield Input(c.stream_key, id="key", select_on_focus=True, compact=True)
            yield Label("Watch link", classes="field-label")
            yield Input(c.watch_url, id="watch", select_on_focus=True, compact=True)
            yield Static(Text(c.obs_advice), classes="advice")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy key (k)", variant="primary", id="copy-key")
                yield Button("Done (Enter)", id="done")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#done", Button).focus()

    def action_copy(self, what: str) -> None:
        value = {"server": self._c.rtmp_url, "key": self._c.stream_key,
                 "watch": self._c.watch_url}[what]
        self.app.copy_to_clipboard(value)
        self.notify(f"Copied the {'stream key' if what == 'key' else what} to the clipboard")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy-key":
            self.action_copy("key")
        else:
            self.dismiss()
