"""A viewer link for a private (or unlisted) channel: the signed, expiring grant's watch URL,
ready to copy (issue 14 §1; the appliance makes it, as ``hearth grant create`` does)."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from appliance.api.schema import GrantCreated

LINK_SECONDS = 24 * 3600.0
"""How long a link made from the dashboard lasts (the CLI takes ``--expires``)."""


class GrantScreen(ModalScreen[None]):
    """Shows one grant's watch URL; ``w`` copies it (OSC 52, through SSH and tmux)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "copy", "Copy link"),
        Binding("enter", "dismiss", "Done", priority=True),
        Binding("escape", "dismiss", "Done", show=False)]

    def __init__(self, grant: GrantCreated, title: str) -> None:
        super().__init__()
        self._grant = grant
        self._title = title

    def compose(self) -> ComposeResult:
        g = self._grant
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(g.expires_at))
        with VerticalScroll(classes="dialog credentials"):
            yield Label(Text(f"Viewer link for {self._title}"), classes="dialog-title")
            yield Label(f"Valid until {until}. Anyone with it can watch; revoke every link "
                        f"with: hearth grant revoke-all {g.channel_id}", classes="field-label")
            yield Input(g.watch_url, id="link", select_on_focus=True, compact=True)
            yield Static(Text("The grant rides after '#': browsers never send it to servers "
                              "or caches; the page turns it into a cookie."), classes="advice")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy link (w)", variant="primary", id="copy")
                yield Button("Done (Enter)", id="done")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#done", Button).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self._grant.watch_url)
        self.notify("Copied the viewer link to the clipboard")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.dismiss()
