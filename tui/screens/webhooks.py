"""Webhooks: every endpoint with its delivery state (``W`` from the dashboard).

One row per endpoint: state (new, ok, failing, disabled), the last HTTP status, failures in a
row, messages waiting (and dropped), when the last one was delivered, the URL and the
subscribed events; the selected endpoint's last error under the table. ``t`` queues a
``webhook.test`` message, ``r`` refreshes, ``Esc`` goes back. Adding and removing endpoints
is the CLI's (``hearth webhook add|remove``): the secret is printed there, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from appliance.api.schema import AdminWebhook, safe_text
from tui.client import AdminClient, ApplianceError
from tui.screens.error import ErrorScreen


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    age = max(0, int(now - ts))
    if age < 120:
        return f"{age} s ago"
    if age < 7200:
        return f"{age // 60} min ago"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


class WebhooksScreen(Screen[None]):
    """The webhook endpoints; talks to the appliance through the app's client."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "test", "Send test"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, client: AdminClient, clock: Callable[[], float]) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.webhooks: list[AdminWebhook] = []

    def compose(self) -> ComposeResult:
        yield Label("Webhooks", classes="dialog-title")
        table: DataTable[str] = DataTable(id="webhooks", cursor_type="row", zebra_stripes=True)
        table.add_columns("Id", "State", "Last", "Fails", "Queue", "Delivered", "URL", "Events")
        yield table
        yield Label("", id="webhook-error")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    @work(exclusive=True, group="webhooks")
    async def action_refresh(self) -> None:
        try:
            self.webhooks = await self.client.list_webhooks()
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        table = self.query_one("#webhooks", DataTable)
        table.clear()
        now = self.clock()
        for w in self.webhooks:
            queue = str(w.pending) + (f" (-{w.dropped})" if w.dropped else "")
            # Text, not str: a DataTable parses str cells as markup, and URLs and errors are
            # not ours to trust (docs/threat-model.md §logs).
            cells = (w.id, w.state.value,
                     str(w.last_status) if w.last_status is not None else "—",
                     str(w.consecutive_failures), queue, _when(w.last_success_at, now),
                     safe_text(w.url, 60), ", ".join(w.events) or "all")
            table.add_row(*(Text(c) for c in cells), key=w.id)
        if not self.webhooks:
            self.query_one("#webhook-error", Label).update(
                "No webhooks. Add one with: hearth webhook add URL")
        else:
            self._show_error()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_error()

    def _show_error(self) -> None:
        w = self._selected(quiet=True)
        self.query_one("#webhook-error", Label).update(
            Text(f"Last error: {safe_text(w.last_error, 200)}") if w is not None
            and w.last_error else "")

    def _selected(self, quiet: bool = False) -> AdminWebhook | None:
        table = self.query_one("#webhooks", DataTable)
        if not self.webhooks or not 0 <= table.cursor_row < len(self.webhooks):
            if not quiet:
                self.notify("No webhook selected", severity="warning")
            return None
        return self.webhooks[table.cursor_row]

    @work(group="intent")
    async def action_test(self) -> None:
        w = self._selected()
        if w is None:
            return
        try:
            await self.client.test_webhook(w.id)
        except ApplianceError as exc:
            self.app.push_screen(ErrorScreen(exc.title, exc.message))
            return
        self.notify(f"Test message queued for {w.id}")
        self.action_refresh()
