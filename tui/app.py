"""``DashboardApp``: the thin Textual app. Its admin client and clock are injected."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from tui.client import AdminClient
from tui.screens.main import MainScreen


class DashboardApp(App[None]):
    """The operator's dashboard.

    Args:
        client: how the app reaches the appliance (:class:`tui.client.UnixSocketAdminClient`
            in production, :class:`tui.testing.FakeAdminClient` in tests and benches).
        clock: wall-clock seconds, for uptimes and ages (frozen in tests).
        where: shown in the header, e.g. the admin socket path.
    """

    CSS_PATH = "app.tcss"
    TITLE = "Hearth"
    ENABLE_COMMAND_PALETTE = False
    # Textual declares this as an instance variable, so it cannot be a ClassVar here.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("t", "toggle_theme", "Light/dark"),
        # Hidden from the footer (80 columns are full); the README lists it.
        Binding("R", "recordings", "Recordings", show=False),
        Binding("N", "nostr", "Nostr signer", show=False),
        Binding("W", "webhooks", "Webhooks", show=False),
    ]

    def __init__(self, client: AdminClient, *, clock: Callable[[], float] = time.time,
                 where: str = "") -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.sub_title = where

    def on_mount(self) -> None:
        self.push_screen(MainScreen(self.client, clock=self.clock))

    def action_recordings(self) -> None:
        from tui.screens.recordings import RecordingsScreen

        if not isinstance(self.screen, RecordingsScreen):
            self.push_screen(RecordingsScreen(self.client))

    def action_webhooks(self) -> None:
        from tui.screens.webhooks import WebhooksScreen

        if not isinstance(self.screen, WebhooksScreen):
            self.push_screen(WebhooksScreen(self.client, self.clock))

    def action_nostr(self) -> None:
        from tui.screens.nostr import NostrScreen

        if not isinstance(self.screen, NostrScreen):
            self.push_screen(NostrScreen(self.client))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    async def action_quit(self) -> None:
        await self.client.close()
        self.exit()
