"""Plan a broadcast of a channel: a title and a start time (local), announced on Nostr."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label

from tui.screens.field_errors import show_field_error

START_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True, slots=True)
class PlanDraft:
    title: str
    starts: float
    """Unix time."""


def parse_start(text: str) -> float | None:
    """``YYYY-MM-DD HH:MM`` in local time (or ISO 8601 with an offset) → Unix time."""
    text = text.strip()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


class PlanForm(ModalScreen[PlanDraft | None]):
    """Dismisses with the plan (Ctrl+S / Save) or ``None`` (Esc).

    ``error`` is ``(field, message)`` from the appliance's last refusal, shown under the field.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True), Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, channel_title: str, *, default_start: float,
                 draft: PlanDraft | None = None,
                 error: tuple[str | None, str] | None = None) -> None:
        super().__init__()
        self._channel_title = channel_title
        self._draft = draft
        self._default_start = default_start
        self._error = error

    def compose(self) -> ComposeResult:
        starts = self._draft.starts if self._draft else self._default_start
        with VerticalScroll(classes="dialog form"):
            yield Label(Text(f"Plan a broadcast of {self._channel_title}"), classes="dialog-title")
            yield Label("Title", classes="field-label")
            yield Input(self._draft.title if self._draft else self._channel_title,
                        placeholder="What is on? (required)", id="f-title", compact=True)
            yield Label("", id="err-title", classes="field-error")
            yield Label("Starts (local time)", classes="field-label")
            yield Input(dt.datetime.fromtimestamp(starts).strftime(START_FORMAT),
                        placeholder="YYYY-MM-DD HH:MM", id="f-starts", compact=True)
            yield Label("", id="err-starts", classes="field-error")
            yield Label("", id="err-form", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (Ctrl+S)", variant="primary", id="save")
                yield Button("Cancel (Esc)", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        if self._error is not None:
            self._show_error(*self._error)
        else:
            self.query_one("#f-title", Input).focus()

    def _show_error(self, field: str | None, message: str) -> None:
        show_field_error(self, field if field in ("title", "starts") else None, message)

    def on_input_submitted(self) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        title = self.query_one("#f-title", Input).value.strip()
        if not title:
            self._show_error("title", "A title is required.")
            return
        starts = parse_start(self.query_one("#f-starts", Input).value)
        if starts is None:
            self._show_error("starts", "A date and time like 2026-12-04 20:00.")
            return
        self.dismiss(PlanDraft(title, starts))

    def action_cancel(self) -> None:
        self.dismiss(None)
