"""Create or edit a stream: title, summary, tags, image URL, recording, quality ladder, with
validation messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Checkbox, Footer, Input, Label, Select

from tui.client import StreamDraft
from tui.screens.draft_form import DraftForm

FIELDS = (("title", "Title", "What is on? (required)"),
          ("summary", "Summary", "One line for the discovery page"),
          ("tags", "Tags", "music, live, jazz"),
          ("image", "Image URL", "https://… (optional)"))

RECORDING_FIELDS = ("record", "retention_days", "visibility", "password")
"""Fields on the recording and visibility rows; the appliance's 400 errors may name any."""
VISIBILITIES = (("public (listed, Nostr)", "public"), ("unlisted (link only)", "unlisted"),
                ("private (grant)", "private"))


def parse_ladder_field(text: str) -> tuple[str, ...]:
    """``"720p, 480p"`` → ``("720p", "480p")``; ``""`` or ``"off"`` → ``()`` (remux only).

    The appliance checks the names (a 400 naming ``ladder`` is shown under the field).
    """
    names = tuple(dict.fromkeys(text.replace(",", " ").lower().split()))
    return () if names in ((), ("off",)) else names


def parse_retention(text: str) -> int | None:
    """``""`` → ``None`` (the appliance's default: kept until the disk cap); ``"30"`` → 30.

    Raises:
        ValueError: not a whole number of days of at least 1 (the appliance checks the upper
            bound and answers a 400 naming ``retention_days``, shown under the field).
    """
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ValueError(text)
    return int(text)


def parse_tags(text: str) -> tuple[str, ...]:
    """``"music, #live jazz"`` → ``("music", "live", "jazz")`` (commas or spaces)."""
    parts = text.replace(",", " ").split()
    return tuple(dict.fromkeys(p.lstrip("#") for p in parts if p.lstrip("#")))


class StreamForm(DraftForm[StreamDraft]):
    """Dismisses with the draft (Ctrl+S / Save) or ``None`` (Esc).

    ``error`` is ``(field, message)`` from the appliance's last refusal, shown under the field.
    """

    ERROR_FIELDS: ClassVar[Mapping[str, str]] = {
        n: n for n in (*(f for f, _, _ in FIELDS), *RECORDING_FIELDS, "ladder")}

    def __init__(self, draft: StreamDraft | None = None, *, editing: bool = False,
                 error: tuple[str | None, str] | None = None,
                 visibility: str = "public") -> None:
        """``visibility``: the channel's current one (the draft sends it only if changed)."""
        super().__init__(error)
        self._draft = draft or StreamDraft("")
        self._baseline = visibility
        self._visibility = draft.visibility if draft and draft.visibility else visibility
        self._editing = editing

    def compose(self) -> ComposeResult:
        values = {"title": self._draft.title, "summary": self._draft.summary,
                  "tags": ", ".join(self._draft.tags), "image": self._draft.image}
        with VerticalScroll(classes="dialog form"):
            # The visibility sits on the heading's line: the form must fit 80×24.
            with Horizontal(classes="form-row", id="visibility-row"):
                yield Label("Edit channel" if self._editing else "New channel",
                            classes="dialog-title")
                yield Label("Visibility", classes="field-label")
                yield Select(VISIBILITIES, value=self._visibility, allow_blank=False,
                             id="f-visibility", compact=True)
            for name, label, placeholder in FIELDS:
                yield Label(label, classes="field-label")
                yield Input(values[name], placeholder=placeholder, id=f"f-{name}", compact=True)
                yield Label("", id=f"err-{name}", classes="field-error")
            # One row for the recording policy so the form keeps Save/Cancel and the footer
            # on an 80×24 terminal.
            with Horizontal(classes="form-row"):
                yield Checkbox("Record broadcasts", self._draft.record, id="f-record",
                               compact=True)
                yield Label("Keep recordings", classes="field-label")
                retention = self._draft.retention_days
                yield Input("" if retention is None else str(retention), id="f-retention_days",
                            placeholder="∞", compact=True, restrict=r"[0-9]*", max_length=5)
                yield Label("days (empty: disk cap)", classes="field-label")
            for name in RECORDING_FIELDS:
                yield Label("", id=f"err-{name}", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Quality ladder", classes="field-label")
                yield Input(",".join(self._draft.ladder), id="f-ladder", placeholder="off",
                            compact=True, max_length=64)
                yield Label("e.g. 720p,480p,360p (empty: off)", classes="field-label")
            yield Label("", id="err-ladder", classes="field-error")
            yield from self.compose_buttons()
        yield Footer()

    def action_save(self) -> None:
        def value(name: str) -> str:
            return self.query_one(f"#f-{name}", Input).value.strip()

        if not value("title"):
            self._show_error("title", "A title is required.")
            return
        try:
            retention = parse_retention(value("retention_days"))
        except ValueError:
            self._show_error("retention_days",
                             "Keep recordings: a whole number of days (1 or more), or empty.")
            return
        chosen = str(self.query_one("#f-visibility", Select).value)
        self.dismiss(StreamDraft(value("title"), value("summary"), parse_tags(value("tags")),
                                 value("image"), self.query_one("#f-record", Checkbox).value,
                                 retention, parse_ladder_field(value("ladder")),
                                 visibility=None if chosen == self._baseline else chosen))
