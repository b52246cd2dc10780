"""Errors under form fields: one shared way for every form screen to show the appliance's (or
its own) refusal under the field it names."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Label


def show_field_error(screen: Screen[Any], target: str | None, message: str) -> None:
    """Hide every ``.field-error`` label of ``screen``, show ``message`` (as plain text, never
    markup) in ``#err-<target>`` and focus ``#f-<target>``; ``None`` means the form-wide
    ``#err-form`` label. ``target`` must name a field the form has (map API field names first).
    """
    for label in screen.query(".field-error").results(Label):
        label.update("")
        label.display = False
    error = screen.query_one(f"#err-{target or 'form'}", Label)
    error.update(Text(message))
    error.display = True
    if target is not None:
        screen.query_one(f"#f-{target}").focus()
