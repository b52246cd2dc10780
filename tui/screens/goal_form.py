"""Set a stream's zap goal (NIP-75, issue 13): what it is for and how many sats.

The appliance publishes it as a kind 9041 signed as the operator and links it from the
broadcast's live event (``POST /v1/streams/{id}/goal``, as ``hearth nostr goal`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Input, Label

from appliance.api.schema import StreamGoal
from tui.screens.draft_form import DraftForm

MAX_SATS_DIGITS = 16
"""21 million BTC is 2.1e15 sats: 16 digits (the appliance checks the exact bound)."""


@dataclass(frozen=True, slots=True)
class GoalDraft:
    title: str
    sats: int


def parse_sats(text: str) -> int | None:
    """``"5000"`` or ``"5 000"``/``"5,000"`` → 5000; ``None`` unless a whole number >= 1."""
    digits = text.strip().replace(",", "").replace(" ", "").replace("_", "")
    if not digits.isascii() or not digits.isdigit() or len(digits) > MAX_SATS_DIGITS:
        return None
    sats = int(digits)
    return sats if sats >= 1 else None


def describe_goal(goal: StreamGoal | None) -> Text:
    """One line about the current goal (its title is the operator's, shown inert)."""
    if goal is None:
        return Text("No goal yet.")
    return Text(f"Current goal: {goal.title}: {goal.progress_msats // 1000:,} / "
                f"{goal.amount_msats // 1000:,} sats")


class GoalForm(DraftForm[GoalDraft]):
    """Dismisses with the goal (Ctrl+S / Save) or ``None`` (Esc).

    ``error`` is ``(field, message)`` from the appliance's last refusal: under the title or the
    sats field when it names one, else under the form.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Publish", priority=True),
    ]
    SAVE_LABEL: ClassVar[str] = "Publish"
    ERROR_FIELDS: ClassVar[Mapping[str, str]] = {
        "title": "title", "sats": "sats", "amount_sats": "sats"}

    def __init__(self, channel_title: str, current: StreamGoal | None, *,
                 draft: GoalDraft | None = None,
                 error: tuple[str | None, str] | None = None) -> None:
        super().__init__(error)
        self._channel_title = channel_title
        self._current = current
        self._draft = draft

    def compose(self) -> ComposeResult:
        title = self._draft.title if self._draft else (
            self._current.title if self._current else "")
        sats = (str(self._draft.sats) if self._draft else
                str(self._current.amount_msats // 1000) if self._current else "")
        with VerticalScroll(classes="dialog form"):
            yield Label(Text(f"Zap goal for {self._channel_title}"), classes="dialog-title")
            yield Label(describe_goal(self._current), classes="dialog-detail", id="goal-current")
            yield Label("What the zaps are for", classes="field-label")
            yield Input(title, placeholder="New microphone (required)", id="f-title",
                        compact=True, max_length=200)
            yield Label("", id="err-title", classes="field-error")
            yield Label("Target (sats)", classes="field-label")
            yield Input(sats, placeholder="5000", id="f-sats", compact=True,
                        restrict=r"[0-9 ,_]*", max_length=24)
            yield Label("", id="err-sats", classes="field-error")
            yield from self.compose_buttons()
        yield Footer()

    def action_save(self) -> None:
        title = self.query_one("#f-title", Input).value.strip()
        if not title:
            self._show_error("title", "Say what the zaps are for.")
            return
        sats = parse_sats(self.query_one("#f-sats", Input).value)
        if sats is None:
            self._show_error("sats", "A whole number of sats, 1 or more.")
            return
        self.dismiss(GoalDraft(title, sats))
