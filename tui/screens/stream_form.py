"""Create or edit a stream: title, summary, tags, image URL, with validation messages."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label

from tui.client import StreamDraft

FIELDS = (("title", "Title", "What is on? (required)"),
          ("summary", "Summary", "One line for the discovery page"),
          ("tags", "Tags", "music, live, jazz"),
          ("image", "Image URL", "https://… (optional)"))


def parse_tags(text: str) -> tuple[str, ...]:
    """``"music, #live jazz"`` → ``("music", "live", "jazz")`` (commas or spaces)."""
    parts = text.replace(",", " ").split()
    return tuple(dict.fromkeys(p.lstrip("#") for p in parts if p.lstrip("#")))


class StreamForm(ModalScreen[StreamDraft | None]):
    """Dismisses with the draft (Ctrl+S / Save) or ``None`` (Esc).

    ``error`` is ``(field, message)`` from the appliance's last refusal, shown under the field.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True), Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, draft: StreamDraft | None = None, *, editing: bool = False,
                 error: tuple[str | None, str] | None = None) -> None:
        super().__init__()
        self._draft = draft or StreamDraft("")
        self._editing = editing
        self._error = error

    def compose(self) -> ComposeResult:
        values = {"title": self._draft.title, "summary": self._draft.summary,
                  "tags": ", ".join(self._draft.tags), "image": self._draft.image}
        with VerticalScroll(classes="dialog form"):
            yield Label("Edit channel" if self._editing else "New channel",
                        classes="dialog-title")
            for name, label, placeholder in FIELDS:
                yield Label(label, classes="field-label")
                yield Input(values[name], placeholder=placeholder, id=f"f-{name}", compact=True)
                yield Label("", id=f"err-{name}", classes="field-error")
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
        for label in self.query(".field-error").results(Label):
            label.update("")
            label.display = False
        target = field if field in {n for n, _, _ in FIELDS} else "form"
        error = self.query_one(f"#err-{target}", Label)
        error.update(Text(message))
        error.display = True
        if target != "form":
            self.query_one(f"#f-{target}", Input).focus()

    def on_input_submitted(self) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        def value(name: str) -> str:
            return self.query_one(f"#f-{name}", Input).value.strip()

        if not value("title"):
            self._show_error("title", "A title is required.")
            return
        self.dismiss(StreamDraft(value("title"), value("summary"), parse_tags(value("tags")),
                                 value("image")))

    def action_cancel(self) -> None:
        self.dismiss(None)
