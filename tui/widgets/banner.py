"""The lost-connection banner (hidden while connected)."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


class ConnectionBanner(Static):
    """Set :attr:`message`; an empty message hides the banner."""

    message: reactive[str] = reactive("", init=False)

    def on_mount(self) -> None:
        self.display = bool(self.message)

    def watch_message(self, message: str) -> None:
        self.update(message)
        self.display = bool(message)
