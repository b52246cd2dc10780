"""Control-plane bus: typed, low-rate events between the appliance's parts.

Subscriptions are by event class; each subscriber owns a bounded queue, so a stuck consumer
(a dead TUI connection, a slow relay publisher) loses its own oldest events — counted in
``dropped`` — and never blocks the publisher. Media never goes through here (see
:mod:`appliance.hub`).

Events are frozen dataclasses and their reasons are enums (shared with the admin API in
:mod:`appliance.api.schema`), so a consumer matches on types and members, never on strings.

Usage::

    async with bus.subscribe(BroadcastChanged, LogRecorded) as events:
        async for event in events:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

# The reasons are the admin API's own enums: the event stream forwards them unchanged.
from appliance.api.schema import (
    BroadcastChange,
    ChannelChange,
    ChatChange,
    ChatMessage,
    RecordingChange,
    RelayInfo,
)


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every bus event."""

    at: float = field(default_factory=time.time, kw_only=True)


# Reasons, under the names the appliance uses (the admin API's enums).
ChannelReason = ChannelChange
BroadcastReason = BroadcastChange


@dataclass(frozen=True, slots=True)
class ChannelChanged(Event):
    """A channel was created, edited, had its key rotated, or was deleted."""

    channel_id: str
    reason: ChannelChange


@dataclass(frozen=True, slots=True)
class BroadcastChanged(Event):
    """A broadcast changed state. Published after the change is committed to SQLite."""

    broadcast_id: str
    channel_id: str
    reason: BroadcastChange


@dataclass(frozen=True, slots=True)
class ViewersChanged(Event):
    """Periodic viewer figures of a live broadcast (emitted only when they change)."""

    broadcast_id: str
    channel_id: str
    current: int
    peak: int
    total: int


@dataclass(frozen=True, slots=True)
class LogRecorded(Event):
    """An operator-visible event-log entry, published once stored (``id`` is its row)."""

    id: int
    level: str
    kind: str
    message: str
    stream_id: str | None


@dataclass(frozen=True, slots=True)
class ChatChanged(Event):
    """A chat message arrived, or was hidden, unhidden or pinned; ``message`` is its state."""

    stream_id: str
    reason: ChatChange
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class MuteChanged(Event):
    """The host mute list gained or lost an author (hex pubkey)."""

    pubkey: str
    muted: bool


@dataclass(frozen=True, slots=True)
class ProfileChanged(Event):
    """A chat author's display name was learned or changed (their kind 0)."""

    pubkey: str
    display_name: str


@dataclass(frozen=True, slots=True)
class ReactionAdded(Event):
    """A NIP-25 reaction to a stream's live event (``target`` ``""``) or to one of its chat
    messages (``target`` = the message id)."""

    stream_id: str
    target: str
    content: str
    pubkey: str


@dataclass(frozen=True, slots=True)
class GoalChanged(Event):
    """A stream's NIP-75 zap goal was set, or a zap counted toward it."""

    stream_id: str


@dataclass(frozen=True, slots=True)
class RelayChanged(Event):
    """A relay's state or counters changed."""

    relay: RelayInfo


@dataclass(frozen=True, slots=True)
class RecordingChanged(Event):
    """A broadcast's recording became ready (complete on disk) or was deleted."""

    broadcast_id: str
    reason: RecordingChange
    detail: str = ""
    """Human-readable detail: duration and size when ready, the reason when deleted."""


@dataclass(frozen=True, slots=True)
class PublisherRefused(Event):
    """Refused publish attempts, aggregated like the event log: the first of a quiet period
    at once, then one summary per interval (``count`` attempts), never one per attempt."""

    message: str
    count: int


@dataclass(frozen=True, slots=True)
class RestreamFailed(Event):
    """A simulcast target failed several times in a row (it keeps retrying). ``server_url``
    has no key; ``error`` is sanitised and never contains the key."""

    channel_id: str
    target_id: int
    server_url: str
    error: str
    failures: int


class Subscription:
    """One consumer's bounded queue; iterate it with ``async for``."""

    def __init__(self, bus: Bus, kinds: tuple[type[Event], ...], maxsize: int) -> None:
        self._bus = bus
        self.kinds = kinds
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


class Bus:
    """In-process publish/subscribe by event class."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    def publish(self, event: Event) -> None:
        """Deliver to every interested subscriber; never blocks."""
        for sub in list(self._subs):
            if isinstance(event, sub.kinds):
                sub._offer(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, *kinds: type[Event],
                        maxsize: int = 1000) -> AsyncIterator[Subscription]:
        sub = Subscription(self, kinds or (Event,), maxsize)
        self._subs.append(sub)
        try:
            yield sub
        finally:
            self._subs.remove(sub)
