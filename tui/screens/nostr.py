"""The operator's Nostr signer (``N`` from the dashboard): who signs, and pairing a NIP-46
remote signer so live events and chat are signed by the operator's key, which never touches
the box.

``b`` pairs a ``bunker://`` URI typed (or pasted) into the field; ``c`` shows a
``nostrconnect://`` URI and its QR code for a signer app to scan (the screen refreshes until
the signer answers); ``d`` forgets the signer; ``r`` refreshes; ``Esc`` goes back. When the
signer is unreachable the reason, and the live events waiting for it, are shown.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from appliance.api.schema import pairing_qr
from tui.client import AdminClient, ApplianceError
from tui.screens.error import ErrorScreen


def describe(info: dict[str, Any]) -> str:
    """The identity and signer lines shown on the screen (plain text)."""
    signer = info.get("signer") or {}
    lines = [f"Hearth's key: {info.get('service_npub', '?')}",
             f"Signing as:   {info.get('signing_as', '?')}",
             f"Operator:     {info.get('operator_pubkey') or '—'}",
             f"Remote signer: {signer.get('state', 'none')}"]
    if signer.get("user_pubkey"):
        lines.append(f"  signs for {signer['user_pubkey']}")
    if signer.get("last_error"):
        lines.append(f"  last error: {signer['last_error']}")
    for sid, reason in (signer.get("waiting") or {}).items():
        lines.append(f"  waiting: live event of {sid}: {reason}")
    return "\n".join(lines)


class NostrScreen(Screen[None]):
    """Signer state and pairing; talks to the appliance through the app's client."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "pair", "Pair bunker"),
        Binding("c", "nostrconnect", "Show QR"),
        Binding("d", "unpair", "Forget"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, client: AdminClient) -> None:
        super().__init__()
        self.client = client
        self.info: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Label("Nostr signer", classes="dialog-title")
        with VerticalScroll():
            yield Static("", id="nostr-state")
            yield Input(placeholder="bunker://… (then press b)", id="bunker-uri")
            yield Static("", id="nostr-qr")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(2.0, self._poll)

    def _poll(self) -> None:
        if (self.info.get("signer") or {}).get("state") == "pairing":
            self.action_refresh()

    @work(exclusive=True, group="nostr")
    async def action_refresh(self) -> None:
        try:
            self.info = await self.client.nostr_info()
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self.query_one("#nostr-state", Static).update(Text(describe(self.info)))
        if (self.info.get("signer") or {}).get("state") != "pairing":
            self.query_one("#nostr-qr", Static).update("")

    async def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_pair()

    @work(group="intent")
    async def action_pair(self) -> None:
        uri = self.query_one("#bunker-uri", Input).value.strip()
        if not uri.startswith("bunker://"):
            self.notify("Type or paste a bunker:// URI first", severity="warning")
            return
        try:
            await self.client.pair_bunker(uri)
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self.query_one("#bunker-uri", Input).value = ""
        self.notify("Paired: live events are signed by the operator's key")
        self.action_refresh()

    @work(group="intent")
    async def action_nostrconnect(self) -> None:
        try:
            uri = await self.client.start_nostrconnect()
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self.query_one("#nostr-qr", Static).update(
            f"Scan with your signer app, or paste:\n{uri}\n\n{pairing_qr(uri)}")
        self.action_refresh()

    @work(group="intent")
    async def action_unpair(self) -> None:
        try:
            await self.client.unpair_signer()
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self.notify("Remote signer forgotten")
        self.action_refresh()
