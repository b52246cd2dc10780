"""The shell every draft form shares (stream, plan, goal): Ctrl+S or Enter in a field saves,
Esc cancels, and the appliance's last refusal is shown under the field it names when the form
opens again (the caller reopens it with the draft and the error)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from tui.screens.field_errors import show_field_error

DraftT = TypeVar("DraftT")


class DraftForm(ModalScreen[DraftT | None]):
    """Dismisses with a draft (:meth:`action_save`, per form) or ``None`` (Esc).

    ``error`` is ``(field, message)`` from the appliance's last refusal: under the field
    :attr:`ERROR_FIELDS` maps it to, else under the form. Subclasses compose their fields
    (the first is ``#f-title``, focused on open) and end with :meth:`compose_buttons`.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True), Binding("escape", "cancel", "Cancel"),
    ]
    SAVE_LABEL: ClassVar[str] = "Save"
    ERROR_FIELDS: ClassVar[Mapping[str, str]] = {}
    """The appliance's field names (and the form's own) → the form field showing the error."""

    def __init__(self, error: tuple[str | None, str] | None = None) -> None:
        super().__init__()
        self._error = error

    def compose_buttons(self) -> ComposeResult:
        """The form-wide error line and the Save/Cancel buttons, after the fields."""
        yield Label("", id="err-form", classes="field-error")
        with Horizontal(classes="dialog-buttons"):
            yield Button(f"{self.SAVE_LABEL} (Ctrl+S)", variant="primary", id="save")
            yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        if self._error is not None:
            self._show_error(*self._error)
        else:
            self.query_one("#f-title", Input).focus()

    def _show_error(self, field: str | None, message: str) -> None:
        show_field_error(self, self.ERROR_FIELDS.get(field or ""), message)

    def on_input_submitted(self) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        """Check the fields (``_show_error`` on the first bad one) and dismiss with a draft."""
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)
