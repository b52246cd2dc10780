"""The selected stream's live chat: the message log, the operator's input, moderation keys."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input

from appliance.api.schema import ChatMessage
from tui import format as fmt
from tui.widgets.caption import Caption
from tui.widgets.chat_log import ChatLog, render_message

__all__ = ["ChatInput", "ChatPane", "render_message"]


class ChatInput(Input):
    """The operator's chat line; its keys stay in the footer while typing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send", show=True),
        Binding("escape", "screen.focus_streams", "Done", show=True),
    ]


class ChatPane(Vertical):
    """Set :attr:`messages`, :attr:`stream_label` and :attr:`available`.

    Posts :class:`SendRequested` and :class:`ModerationRequested`; never calls the appliance.
    """

    messages: reactive[tuple[ChatMessage, ...]] = reactive(tuple, init=False, repaint=False)
    stream_label: reactive[str] = reactive("", init=False, repaint=False)
    available: reactive[bool] = reactive(True, init=False, repaint=False)

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
        self._reply_to: ChatMessage | None = None

    def compose(self) -> ComposeResult:
        yield Caption("Chat", id="chat-title")
        yield ChatLog(id="chat-list")
        yield ChatInput(placeholder="c: write to chat as the operator", id="chat-input")

    @property
    def highlighted(self) -> ChatMessage | None:
        return self.query_one(ChatLog).highlighted

    def watch_stream_label(self) -> None:
        self._update_title()

    def watch_available(self) -> None:
        self._update_title()
        self.watch_messages(self.messages)

    def _update_title(self) -> None:
        title = f"Chat: {self.stream_label}" if self.stream_label else "Chat"
        if self._reply_to is not None:
            title += f"  (replying to {fmt.short_key(self._reply_to.pubkey)})"
        self.query_one("#chat-title", Caption).text = title

    def watch_messages(self, messages: tuple[ChatMessage, ...]) -> None:
        hint = "No messages yet." if self.available else "chat unavailable"
        self.query_one(ChatLog).set_messages(messages, hint=hint)

    def action_compose(self) -> None:
        self._reply_to = None
        self._update_title()
        self.query_one(ChatInput).focus()

    @on(ChatLog.ActionRequested)
    def _action(self, event: ChatLog.ActionRequested) -> None:
        event.stop()
        self.request(event.action)

    def request(self, action: str) -> None:
        message = self.highlighted
        if message is None:
            self.notify("Select a chat message first", severity="warning")
            return
        if action == "reply":
            self._reply_to = message
            self._update_title()
            self.query_one(ChatInput).focus()
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
