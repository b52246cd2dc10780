"""The selected stream's live chat, with the operator's moderation keys."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from appliance.api.schema import ChatMessage
from tui import format as fmt


def render_message(m: ChatMessage) -> Text:
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


class ChatList(OptionList):
    """The message list; keeps the operator's place while new messages arrive."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "request('reply')", "Reply"),
        Binding("h", "request('hide')", "Hide"),
        Binding("p", "request('pin')", "Pin"),
        Binding("m", "request('mute')", "Mute author"),
    ]

    def action_request(self, action: str) -> None:
        pane = self.parent
        if isinstance(pane, ChatPane):
            pane.request(action)


class ChatPane(Vertical):
    """Set :attr:`messages`, :attr:`stream_label` and :attr:`available`.

    Posts :class:`SendRequested` and :class:`ModerationRequested`; never calls the appliance.
    """

    messages: reactive[tuple[ChatMessage, ...]] = reactive(tuple, init=False)
    stream_label: reactive[str] = reactive("", init=False)
    available: reactive[bool] = reactive(True, init=False)

    class SendRequested(Message):
        """The operator wrote a message (optionally replying to ``reply_to``)."""

        def __init__(self, content: str, reply_to: str | None) -> None:
            super().__init__()
            self.content = content
            self.reply_to = reply_to

    class ModerationRequested(Message):
        """``action`` is ``hide``, ``pin`` or ``mute`` on ``message``."""

        def __init__(self, action: str, message: ChatMessage) -> None:
            super().__init__()
            self.action = action
            self.message = message

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._shown: list[ChatMessage] = []
        self._reply_to: ChatMessage | None = None

    def compose(self) -> ComposeResult:
        yield Label("Chat", id="chat-title")
        yield ChatList(id="chat-list")
        yield Input(placeholder="c: write to chat as the operator", id="chat-input")

    @property
    def highlighted(self) -> ChatMessage | None:
        index = self.query_one(ChatList).highlighted
        if index is None or not 0 <= index < len(self._shown):
            return None
        return self._shown[index]

    def watch_stream_label(self) -> None:
        self._update_title()

    def watch_available(self) -> None:
        self._update_title()
        self.watch_messages(self.messages)

    def _update_title(self) -> None:
        title = f"Chat: {self.stream_label}" if self.stream_label else "Chat"
        if self._reply_to is not None:
            title += f"  (replying to {fmt.short_key(self._reply_to.pubkey)})"
        self.query_one("#chat-title", Label).update(title)

    def watch_messages(self, messages: tuple[ChatMessage, ...]) -> None:
        chat = self.query_one(ChatList)
        new = list(messages)
        old_ids = [m.id for m in self._shown]
        new_ids = [m.id for m in new]
        start = old_ids.index(new_ids[0]) if new_ids and new_ids[0] in old_ids else -1
        overlap = len(old_ids) - start if start >= 0 else 0
        follow = chat.highlighted is None or chat.highlighted >= len(old_ids) - 1
        if start >= 0 and old_ids[start:] == new_ids[:overlap]:
            # Append-mostly: drop what scrolled off, re-render moderated lines, add new ones.
            for _ in range(start):
                chat.remove_option_at_index(0)
            for i, m in enumerate(new[:overlap]):
                if m != self._shown[start + i]:
                    chat.replace_option_prompt_at_index(i, render_message(m))
            chat.add_options([Option(render_message(m)) for m in new[overlap:]])
        else:
            chat.clear_options()
            chat.add_options([Option(render_message(m)) for m in new])
        self._shown = new
        if not new:
            chat.clear_options()
            hint = "chat unavailable" if not self.available else "No messages yet."
            chat.add_option(Option(Text(hint, style="dim"), disabled=True))
            self._shown = []
        elif follow and chat.has_focus:
            chat.highlighted = len(new) - 1
        elif follow:
            chat.scroll_end(animate=False)

    def action_compose(self) -> None:
        self._reply_to = None
        self._update_title()
        self.query_one(Input).focus()

    def request(self, action: str) -> None:
        message = self.highlighted
        if message is None:
            self.notify("Select a chat message first", severity="warning")
            return
        if action == "reply":
            self._reply_to = message
            self._update_title()
            self.query_one(Input).focus()
        else:
            self.post_message(self.ModerationRequested(action, message))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        content = event.value.strip()
        if not content:
            return
        reply_to = self._reply_to.id if self._reply_to else None
        event.input.value = ""
        self._reply_to = None
        self._update_title()
        self.post_message(self.SendRequested(content, reply_to))
