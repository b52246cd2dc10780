"""Plan a broadcast of a channel: a title and a start time (local), announced on Nostr."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Input, Label

from tui.screens.draft_form import DraftForm

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


class PlanForm(DraftForm[PlanDraft]):
    """Dismisses with the plan (Ctrl+S / Save) or ``None`` (Esc).

    ``error`` is ``(field, message)`` from the appliance's last refusal, shown under the field.
    """

    ERROR_FIELDS: ClassVar[Mapping[str, str]] = {"title": "title", "starts": "starts"}

    def __init__(self, channel_title: str, *, default_start: float,
                 draft: PlanDraft | None = None,
                 error: tuple[str | None, str] | None = None) -> None:
        super().__init__(error)
        self._channel_title = channel_title
        self._draft = draft
        self._default_start = default_start

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
            yield from self.compose_buttons()
        yield Footer()

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
