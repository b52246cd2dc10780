"""Sans-IO NIP-01/NIP-42 client session for one relay: frames in, typed events and frames out.

Like h11 or the RTMP engine (:mod:`media.rtmp.session`), this does no I/O and knows no event
loop. The transport (:mod:`relay_client.pool`) feeds it:

* :meth:`RelaySession.connection_made` / :meth:`connection_lost` around each WebSocket,
* :meth:`receive_frame` for every text frame,
* :meth:`publish` / :meth:`cancel_publish`, :meth:`subscribe` / :meth:`unsubscribe`,
* :meth:`authenticate` with a signed kind 22242 after an :class:`AuthRequested` event,

and drains :meth:`frames_to_send` (control frames first, then unsent events) and
:meth:`events` (what happened, typed). The session never raises on peer input: a relay that
exceeds its misbehaviour budget (docs/threat-model.md §nostr-relays: malformed frames, invalid
events, ``OK`` for ids never sent, floods) produces :class:`CloseRequested` and the transport
closes the connection with that code.

Event checks, in the order of cost (docs/threat-model.md §nostr-events): subscription known,
``created_at`` window, filter match, already delivered (shared :class:`DeliveredIds`), then id
recompute and BIP-340 verify. Rejections are :class:`EventRejected` with a reason that comes
from the exception *class* (:class:`~relay_client.event.EventIdMismatch` → ``bad-id``, …).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from relay_client.event import EventError, EventIdMismatch, InvalidSignature, NostrEvent
from relay_client.messages import (
    Auth,
    Closed,
    Eose,
    EventMessage,
    Filter,
    InvalidEventMessage,
    Notice,
    Ok,
    RelayProtocolError,
    any_filter_matches,
    auth_message,
    close_message,
    event_message,
    parse_relay_message,
    req_message,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AuthAnswered",
    "AuthRequested",
    "CloseRequested",
    "DeliveredIds",
    "EndOfStoredEvents",
    "EventReceived",
    "EventRejected",
    "NoticeReceived",
    "PublishAnswered",
    "RelaySession",
    "SessionEvent",
    "SessionLimits",
    "SubscriptionClosed",
    "Subscription",
]

#: RFC 6455 §7.4.1: 1008 = policy violation.
POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class Subscription:
    """A REQ the client keeps open (re-sent on every reconnect)."""

    sub_id: str
    filters: tuple[Filter, ...]
    #: events older than this many seconds are dropped (chat: 7 days)
    max_age: int | None = None


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Budgets per connection (docs/threat-model.md §nostr-relays)."""

    misbehaviour_budget: int = 20
    notice_budget: int = 50
    auth_budget: int = 5
    max_future_seconds: int = 900


# -- events out ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventReceived:
    """A verified event for an open subscription, not yet delivered to it."""

    subscription_id: str
    event: NostrEvent


@dataclass(frozen=True, slots=True)
class EventRejected:
    """An inbound event was dropped; ``reason`` is a counter name."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class PublishAnswered:
    """The final answer for one published event (relay ``OK``, or a local cancellation)."""

    event_id: str
    accepted: bool
    message: str


@dataclass(frozen=True, slots=True)
class EndOfStoredEvents:
    subscription_id: str


@dataclass(frozen=True, slots=True)
class SubscriptionClosed:
    """The relay closed a subscription for good (not an ``auth-required`` we can fix)."""

    subscription_id: str
    message: str


@dataclass(frozen=True, slots=True)
class NoticeReceived:
    message: str


@dataclass(frozen=True, slots=True)
class AuthRequested:
    """NIP-42: sign ``build_auth_event(url, challenge)`` and pass it to :meth:`authenticate`."""

    challenge: str


@dataclass(frozen=True, slots=True)
class AuthAnswered:
    accepted: bool
    message: str


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The relay exhausted its misbehaviour budget: close with ``code`` and back off."""

    code: int
    reason: str


SessionEvent = (
    EventReceived
    | EventRejected
    | PublishAnswered
    | EndOfStoredEvents
    | SubscriptionClosed
    | NoticeReceived
    | AuthRequested
    | AuthAnswered
    | CloseRequested
)


class DeliveredIds:
    """LRU of event ids already delivered, per subscription; shared by a pool's sessions so
    an event that several relays send reaches each subscription once (and is verified once)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.duplicates = 0
        self._seen: OrderedDict[str, set[str]] = OrderedDict()

    def delivered(self, event_id: str, sub_id: str) -> bool:
        subs = self._seen.get(event_id)
        if subs is not None and sub_id in subs:
            self.duplicates += 1
            self._seen.move_to_end(event_id)
            return True
        return False

    def mark(self, event_id: str, sub_id: str) -> None:
        subs = self._seen.get(event_id)
        if subs is None:
            self._seen[event_id] = {sub_id}
            if len(self._seen) > self.size:
                self._seen.popitem(last=False)
        else:
            subs.add(sub_id)
            self._seen.move_to_end(event_id)


@dataclass(slots=True)
class _Pending:
    event: NostrEvent
    sent: bool = False
    #: held back until NIP-42 authentication succeeds
    hold: bool = False
    auth_retried: bool = False


@dataclass(slots=True)
class SessionCounters:
    """Cumulative counters across reconnects (read by the transport for status snapshots)."""

    published: int = 0
    rejected: int = 0
    rejected_events: int = 0
    malformed_frames: int = 0
    unexpected_oks: int = 0
    last_ok_at: float | None = None
    last_protocol_error: str | None = None


@dataclass(slots=True)
class _ConnectionState:
    strikes: int = 0
    notices: int = 0
    auths: int = 0
    auth_event_id: str | None = None
    auth_sent: bool = False
    authenticated: bool = False
    closed_for_auth: set[str] = field(default_factory=set)
    closing: bool = False


class RelaySession:
    """Protocol state of one relay across reconnects (outbox and subscriptions persist).

    Args:
        url: the relay URL (only for NIP-42 and log lines).
        delivered: dedup shared with the other sessions of the pool.
        can_authenticate: whether the owner has a signer for NIP-42.
        clock: wall-clock seconds (injected in tests).
    """

    def __init__(
        self,
        url: str,
        *,
        delivered: DeliveredIds | None = None,
        can_authenticate: bool = False,
        limits: SessionLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.delivered = delivered if delivered is not None else DeliveredIds()
        self.can_authenticate = can_authenticate
        self.limits = limits or SessionLimits()
        self.counters = SessionCounters()
        self._clock = clock
        self._subs: dict[str, Subscription] = {}
        self._outbox: dict[str, _Pending] = {}
        self._control: deque[str] = deque()
        self._events: list[SessionEvent] = []
        self._open = False
        self._conn = _ConnectionState()

    # -- read-only state ----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def authenticated(self) -> bool:
        return self._conn.authenticated

    @property
    def pending(self) -> int:
        """Events published and not yet answered."""
        return len(self._outbox)

    def pending_ids(self) -> list[str]:
        return list(self._outbox)

    def has_frames_to_send(self) -> bool:
        return self._open and (
            bool(self._control)
            or any(not p.sent and not p.hold for p in self._outbox.values())
        )

    # -- connection ---------------------------------------------------------------------

    def connection_made(self) -> None:
        """A new WebSocket is open: re-send every subscription and every pending event."""
        self._open = True
        self._conn = _ConnectionState()
        self.counters.last_protocol_error = None
        self._control.clear()
        for sub in self._subs.values():
            self._control.append(req_message(sub.sub_id, *sub.filters))
        for p in self._outbox.values():
            p.sent = p.hold = False

    def connection_lost(self) -> None:
        self._open = False
        self._control.clear()
        self._conn = _ConnectionState()
        for p in self._outbox.values():
            p.sent = False

    def frames_to_send(self) -> list[str]:
        """Drain what to write now, in order: control frames, then events not yet sent."""
        if not self._open:
            return []
        out = list(self._control)
        self._control.clear()
        for p in self._outbox.values():
            if not p.sent and not p.hold:
                p.sent = True
                out.append(event_message(p.event))
        return out

    def events(self) -> list[SessionEvent]:
        """Drain what happened since the last call."""
        out, self._events = self._events, []
        return out

    # -- subscriptions ------------------------------------------------------------------

    def subscribe(self, sub: Subscription) -> None:
        """Open (or replace) a subscription now (if connected) and on every reconnect."""
        frame = req_message(sub.sub_id, *sub.filters)  # validates id and filters
        self._subs[sub.sub_id] = sub
        if self._open:
            self._control.append(frame)

    def unsubscribe(self, sub_id: str) -> None:
        if self._subs.pop(sub_id, None) is not None and self._open:
            self._control.append(close_message(sub_id))

    # -- publishing ---------------------------------------------------------------------

    def publish(self, event: NostrEvent) -> None:
        """Queue ``event``; sent now if connected, else on connect. Idempotent per id."""
        if event.id not in self._outbox:
            self._outbox[event.id] = _Pending(event)

    def cancel_publish(self, event_id: str, message: str) -> None:
        """Give up on an event (timeout, pool closing): answered ``accepted=False``."""
        self._resolve(event_id, False, message)

    def _resolve(self, event_id: str, accepted: bool, message: str) -> None:
        if self._outbox.pop(event_id, None) is None:
            return
        if accepted:
            self.counters.published += 1
            self.counters.last_ok_at = self._clock()
        else:
            self.counters.rejected += 1
        self._events.append(PublishAnswered(event_id, accepted, message))

    # -- NIP-42 -------------------------------------------------------------------------

    def authenticate(self, event: NostrEvent) -> None:
        """Send a signed kind 22242 for the last challenge; held publishes and auth-closed
        subscriptions are retried right behind it (not every relay answers AUTH with an OK;
        nostr-relay 1.14 does not)."""
        if not self._open:
            return
        conn = self._conn
        conn.auth_event_id = event.id
        conn.auth_sent = True
        self._control.append(auth_message(event))
        for p in self._outbox.values():
            p.hold = False
        for sub_id in conn.closed_for_auth:
            sub = self._subs.get(sub_id)
            if sub is not None:
                self._control.append(req_message(sub_id, *sub.filters))

    # -- inbound ------------------------------------------------------------------------

    def receive_frame(self, raw: str | bytes) -> None:
        """Handle one WebSocket text frame from the relay (never raises on its content)."""
        if not self._open or self._conn.closing:
            return
        try:
            msg = parse_relay_message(raw)
        except InvalidEventMessage as exc:
            self._reject_event("invalid", exc.reason)
            self._strike(str(exc))
            return
        except RelayProtocolError as exc:
            self.counters.malformed_frames += 1
            self.counters.last_protocol_error = str(exc)
            self._strike(str(exc))
            return
        if isinstance(msg, EventMessage):
            self._on_event(msg)
        elif isinstance(msg, Ok):
            self._on_ok(msg)
        elif isinstance(msg, Eose):
            if msg.subscription_id in self._subs:
                self._events.append(EndOfStoredEvents(msg.subscription_id))
        elif isinstance(msg, Closed):
            self._on_closed(msg)
        elif isinstance(msg, Notice):
            self._conn.notices += 1
            if self._conn.notices > self.limits.notice_budget:
                self._strike("NOTICE flood")
            else:
                self._events.append(NoticeReceived(msg.message))
        elif isinstance(msg, Auth):
            self._on_auth(msg)

    def _strike(self, reason: str) -> None:
        conn = self._conn
        conn.strikes += 1
        if conn.strikes > self.limits.misbehaviour_budget and not conn.closing:
            conn.closing = True
            self._events.append(CloseRequested(
                POLICY_VIOLATION, f"{conn.strikes} protocol violations, last: {reason}"))

    def _reject_event(self, reason: str, detail: str) -> None:
        self.counters.rejected_events += 1
        self._events.append(EventRejected(reason, detail))

    def _on_event(self, msg: EventMessage) -> None:
        sub = self._subs.get(msg.subscription_id)
        ev = msg.event
        if sub is None:
            # NIP-01: EVENT only for subscriptions we opened.
            self._reject_event("unknown-subscription", msg.subscription_id)
            self._strike("EVENT for unknown subscription")
            return
        now = self._clock()
        if ev.created_at > now + self.limits.max_future_seconds:
            self._reject_event("created-at-future", ev.id)
            return
        if sub.max_age is not None and ev.created_at < now - sub.max_age:
            self._reject_event("created-at-too-old", ev.id)
            return
        if not any_filter_matches(sub.filters, ev):
            self._reject_event("filter-mismatch", ev.id)
            self._strike("event does not match the subscription filter")
            return
        if self.delivered.delivered(ev.id, sub.sub_id):
            return
        try:
            ev.check()
        except EventIdMismatch as exc:
            self._reject_verified("bad-id", exc)
            return
        except InvalidSignature as exc:
            self._reject_verified("bad-signature", exc)
            return
        except EventError as exc:  # e.g. a lone surrogate: no canonical form at all
            self._reject_verified("invalid", exc)
            return
        self.delivered.mark(ev.id, sub.sub_id)
        self._events.append(EventReceived(sub.sub_id, ev))

    def _reject_verified(self, reason: str, exc: EventError) -> None:
        self._reject_event(reason, str(exc))
        self._strike(str(exc))

    def _on_ok(self, ok: Ok) -> None:
        conn = self._conn
        if ok.event_id == conn.auth_event_id:
            conn.auth_event_id = None
            conn.authenticated = ok.accepted
            self._events.append(AuthAnswered(ok.accepted, ok.message))
            return
        p = self._outbox.get(ok.event_id)
        if p is None or not p.sent:
            # OK for something never sent on this connection; may be a late answer for a
            # publish that timed out, so it is only a strike.
            self.counters.unexpected_oks += 1
            self._strike("OK for an unknown event id")
            return
        if (not ok.accepted and ok.prefix == "auth-required" and self.can_authenticate
                and not p.auth_retried):
            # NIP-42: authenticate, then retry this event once.
            p.auth_retried = True
            p.sent = False
            p.hold = not conn.auth_sent
            return
        # NIP-01 shows "duplicate:" with true, but relays differ (nostr-relay 1.14 says
        # false); either way the relay holds the event, which is what a publish means.
        self._resolve(ok.event_id, ok.accepted or ok.prefix == "duplicate", ok.message)

    def _on_closed(self, msg: Closed) -> None:
        sub_id = msg.subscription_id
        conn = self._conn
        if (msg.prefix == "auth-required" and self.can_authenticate and sub_id in self._subs
                and sub_id not in conn.closed_for_auth):
            conn.closed_for_auth.add(sub_id)
            if conn.auth_sent:
                sub = self._subs[sub_id]
                self._control.append(req_message(sub_id, *sub.filters))
            return
        self._events.append(SubscriptionClosed(sub_id, msg.message))

    def _on_auth(self, msg: Auth) -> None:
        conn = self._conn
        conn.auths += 1
        if conn.auths > self.limits.auth_budget:
            self._strike("AUTH flood")
            return
        if not self.can_authenticate:
            logger.info("relay %s asked for NIP-42 AUTH; no signer configured", self.url)
            return
        self._events.append(AuthRequested(msg.challenge))
