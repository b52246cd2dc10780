"""Messages that carry appliance data up to the main screen.

Data messages are posted by the feed worker; the replaceable ones (``can_replace``, as in
toolong) collapse a burst into its last value while the screen is busy, so 50 chat
messages a second become a handful of redraws.
"""

from __future__ import annotations

from textual.message import Message

from appliance.api.schema import AdminStream, ChatChange, ChatMessage, LogEvent, RelayInfo


class Snapshot(Message):
    """Everything loaded after a (re)connect."""

    def __init__(self, streams: list[AdminStream], events: list[LogEvent],
                 relays: list[RelayInfo] | None) -> None:
        super().__init__()
        self.streams = streams
        self.events = events
        self.relays = relays


class StreamsUpdated(Message):
    """A fresh list of all streams (periodic health refresh)."""

    def __init__(self, streams: list[AdminStream]) -> None:
        super().__init__()
        self.streams = streams

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StreamsUpdated)


class StreamUpdated(Message):
    """One stream changed (created, went live, ended, …)."""

    def __init__(self, stream: AdminStream) -> None:
        super().__init__()
        self.stream = stream

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StreamUpdated) and message.stream.id == self.stream.id


class ViewersUpdated(Message):
    """New viewer figures for a live stream."""

    def __init__(self, stream_id: str, current: int, peak: int) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.current = current
        self.peak = peak


class ChatLoaded(Message):
    """The recent chat of a stream; ``messages`` is ``None`` when chat is unavailable."""

    def __init__(self, stream_id: str, messages: list[ChatMessage] | None) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.messages = messages

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ChatLoaded) and message.stream_id == self.stream_id


class ChatReceived(Message):
    """A chat message arrived or was moderated (hidden, unhidden, pinned)."""

    def __init__(self, stream_id: str, reason: ChatChange, message: ChatMessage) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.reason = reason
        self.message = message


class MuteChanged(Message):
    """The host mute list changed for one author (applies to every stream's chat)."""

    def __init__(self, pubkey: str, muted: bool) -> None:
        super().__init__()
        self.pubkey = pubkey
        self.muted = muted


class LogAppended(Message):
    """A new event-log entry (bad key, codec refusal, relay failure, reconnect, …)."""

    def __init__(self, event: LogEvent) -> None:
        super().__init__()
        self.event = event


class RelayUpdated(Message):
    """One relay's state or counters changed."""

    def __init__(self, relay: RelayInfo) -> None:
        super().__init__()
        self.relay = relay


class ConnectionLost(Message):
    """The admin socket is gone; the feed retries after ``retry_in`` seconds."""

    def __init__(self, reason: str, retry_in: float) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in = retry_in

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ConnectionLost)


class Redraw(Message):
    """Internal: push model state down to widgets; a burst collapses into one."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Redraw) and message.part == self.part
