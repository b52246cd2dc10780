"""The chat message list: a Line-API widget that draws only the visible lines.

Why not ``OptionList`` or ``RichLog``: at 50 messages/s the option list rebuilt its line
cache and changed its virtual size on every redraw, and each virtual-size change made
Textual lay the whole screen out again (18.9 % of a core with 20 live streams, issue 12).
This widget has a fixed size from CSS, so a new message is a repaint of this widget only;
each message is wrapped once per width (cached) and only the lines on screen are rendered.

It follows the newest message until the operator moves the cursor up (or scrolls); the
view is anchored to a message id, so messages dropping off the front do not move it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from appliance.api.schema import ChatMessage
from tui import format as fmt


def render_message(m: ChatMessage) -> Text:
    """One chat message as styled text: time, pinned/zap badges, author, content."""
    name = m.display_name or fmt.short_key(m.pubkey)
    text = Text.assemble((fmt.clock_time(m.created_at) + " ", "dim"))
    if m.pinned:
        text.append("PINNED ", "bold reverse")
    if m.zap_msats:
        text.append(f"zap {m.zap_msats // 1000} sat ", "bold yellow")
    text.append(name, "bold magenta" if m.from_operator else "bold cyan")
    text.append(": ")
    if m.hidden or m.muted:
        flag = "hidden" if m.hidden else "muted"
        text.append(f"[{flag}] {m.content}", "dim strike")
    else:
        text.append(m.content)
    return text


class ChatLog(Widget, can_focus=True):
    """Set messages with :meth:`set_messages`; :attr:`highlighted` is the cursor's message.

    Posts :class:`ActionRequested` for the moderation keys; never calls the appliance.
    """

    DEFAULT_CSS = """
    ChatLog { height: 1fr; padding: 0 1; }
    ChatLog > .chat-log--cursor {
        background: $block-cursor-blurred-background;
    }
    ChatLog:focus > .chat-log--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    ChatLog > .chat-log--more { color: $text-muted; text-style: italic; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"chat-log--cursor", "chat-log--more"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-10)", "Page up", show=False),
        Binding("pagedown", "cursor(10)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("r", "request('reply')", "Reply"),
        Binding("h", "request('hide')", "Hide"),
        Binding("p", "request('pin')", "Pin"),
        Binding("m", "request('mute')", "Mute author"),
    ]

    class ActionRequested(Message):
        """The operator pressed a moderation key (``reply``/``hide``/``pin``/``mute``)."""

        def __init__(self, action: str) -> None:
            super().__init__()
            self.action = action

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._messages: list[ChatMessage] = []
        self._index: dict[str, int] = {}
        self._cursor: str | None = None
        self._top: str | None = None
        """When set, the view starts at this message; otherwise it ends at :attr:`_bottom`."""
        self._bottom: str | None = None
        """The message the view ends at; ``None`` follows the newest."""
        self._hint = "No messages yet."
        self._wrapped: dict[str, tuple[ChatMessage, int, list[Strip]]] = {}
        self._view: list[tuple[int, Strip]] | None = None

    # ---- data down --------------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        return len(self._messages)

    @property
    def highlighted(self) -> ChatMessage | None:
        i = self._index.get(self._cursor or "")
        return None if i is None else self._messages[i]

    def set_messages(self, messages: Sequence[ChatMessage], *, hint: str = "No messages yet."
                     ) -> None:
        """Show ``messages`` (oldest first); the cursor and view stay on their message."""
        at_end = self._cursor is not None and self._messages and (
            self._cursor == self._messages[-1].id)
        self._messages = list(messages)
        self._index = {m.id: i for i, m in enumerate(self._messages)}
        self._hint = hint
        if self._cursor not in self._index:
            self._cursor = None
        elif at_end and self.has_focus:  # the operator was reading the newest: keep up
            self._cursor = self._messages[-1].id
            self._top = self._bottom = None
        if self._top not in self._index:
            self._top = None
        if self._bottom not in self._index:
            self._bottom = None
        if len(self._wrapped) > 2 * len(self._messages) + 16:
            self._wrapped = {k: v for k, v in self._wrapped.items() if k in self._index}
        self._invalidate()
        if self.has_focus:
            # Focused before the history arrived, or the cursor's message dropped off the
            # front: place the cursor as focusing does, so the list follows new messages.
            self._place_cursor()

    # ---- rendering ----------------------------------------------------------------------------

    def _invalidate(self) -> None:
        self._view = None
        self.refresh()

    def _lines_of(self, i: int, width: int) -> list[Strip]:
        m = self._messages[i]
        hit = self._wrapped.get(m.id)
        if hit is not None and hit[0] is m and hit[1] == width:
            return hit[2]
        text = render_message(m)
        text.no_wrap = False
        console = self.app.console
        options = console.options.update_width(width)
        base = self.rich_style
        strips = [Strip(Segment.apply_style(line, base), width) for line in
                  console.render_lines(text, options, pad=True)]
        self._wrapped[m.id] = (m, width, strips)
        return strips

    def _compute_view(self) -> list[tuple[int, Strip]]:
        """The visible lines, top to bottom, each with its message index (-1: no message)."""
        width, height = self.content_size.width, self.content_size.height
        if width <= 0 or height <= 0:
            return []
        if not self._messages:
            style = self.get_component_rich_style("chat-log--more")
            hint = Strip([Segment(self._hint[:width], self.rich_style + style)])
            return [(-1, hint.extend_cell_length(width, self.rich_style))]
        last = len(self._messages) - 1
        out: list[tuple[int, Strip]] = []
        if self._top is not None:
            i = self._index[self._top]
            while i <= last and len(out) < height:
                out.extend((i, s) for s in self._lines_of(i, width))
                i += 1
            out = out[:height]
            if len(out) < height:  # reached the newest: show it at the bottom instead
                self._top = None
                self._bottom = None
                return self._compute_view()
            return out
        bottom = self._index.get(self._bottom or "", last)
        i = bottom
        while i >= 0 and len(out) < height:
            out[:0] = [(i, s) for s in self._lines_of(i, width)]
            i -= 1
        i = bottom + 1
        while i <= last and len(out) < height:  # near the oldest: fill with newer ones
            out.extend((i, s) for s in self._lines_of(i, width))
            i += 1
        return out[-height:] if i == bottom + 1 else out[:height]

    def render_line(self, y: int) -> Strip:
        if self._view is None:
            self._view = self._compute_view()
        width = self.content_size.width
        if not 0 <= y < len(self._view):
            return Strip.blank(width, self.rich_style)
        i, strip = self._view[y]
        if i >= 0 and self._messages[i].id == self._cursor:
            cursor = self.get_component_rich_style("chat-log--cursor")
            post = Style(bgcolor=cursor.bgcolor, color=cursor.color)
            strip = Strip(Segment.apply_style(strip, post_style=post), strip.cell_length)
        return strip

    def on_resize(self) -> None:
        self._invalidate()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._wrapped.clear()  # the theme changed: re-render with the new base style
        self._view = None

    def on_focus(self) -> None:
        self._place_cursor()
        self._invalidate()

    def _place_cursor(self) -> None:
        """Without a cursor, put it on the newest message, or the first on screen if the
        operator had scrolled away from the newest."""
        if self._cursor is None and self._messages:
            self._cursor = self._messages[-1].id if self._top is None and self._bottom is None \
                else self._visible_range()[0]

    def on_blur(self) -> None:
        self._invalidate()

    # ---- moving --------------------------------------------------------------------------------

    def _visible_range(self) -> tuple[str, str]:
        """Ids of the first and last message fully or partly on screen."""
        if self._view is None:
            self._view = self._compute_view()
        shown = [i for i, _ in self._view if i >= 0] or [len(self._messages) - 1]
        return self._messages[shown[0]].id, self._messages[shown[-1]].id

    def _move_to(self, i: int) -> None:
        if not self._messages:
            return
        i = max(0, min(i, len(self._messages) - 1))
        self._cursor = self._messages[i].id
        first, last = (self._index[x] for x in self._visible_range())
        if i == len(self._messages) - 1:
            self._top = self._bottom = None  # follow the newest again
        elif i <= first:
            self._top, self._bottom = self._cursor, None
        elif i >= last:
            self._top, self._bottom = None, self._cursor
        self._invalidate()

    def action_cursor(self, delta: int) -> None:
        here = self._index.get(self._cursor or "")
        self._move_to(len(self._messages) - 1 if here is None else here + delta)

    def action_first(self) -> None:
        self._move_to(0)

    def action_last(self) -> None:
        self._move_to(len(self._messages) - 1)

    def action_request(self, action: str) -> None:
        self.post_message(self.ActionRequested(action))

    def on_click(self, event: events.Click) -> None:
        if self._view is None:
            self._view = self._compute_view()
        y = event.y - self.styles.padding.top
        if 0 <= y < len(self._view) and self._view[y][0] >= 0:
            self._cursor = self._messages[self._view[y][0]].id
            self._invalidate()

    def _scroll(self, delta: int) -> None:
        if not self._messages:
            return
        first, last = (self._index[x] for x in self._visible_range())
        if delta < 0:
            self._top, self._bottom = self._messages[max(0, first + delta)].id, None
        elif last < len(self._messages) - 1:
            self._top, self._bottom = None, self._messages[last + delta].id if (
                last + delta < len(self._messages)) else None
        self._invalidate()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self._scroll(-1)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self._scroll(1)
