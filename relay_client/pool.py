"""A pool of Nostr relay connections: a thin ``websockets`` (asyncio) loop per relay.

All protocol state lives in the sans-IO :class:`~relay_client.session.RelaySession` (one per
relay, kept across reconnects). This module only moves bytes: one long-lived task per relay
connects, feeds frames into its session, writes what the session wants sent, turns session
events into callbacks and futures, and reconnects with jittered exponential backoff
(docs/threat-model.md §nostr-relays: 1 s × 1.5, capped at 5 min).

Contracts:

* :meth:`RelayPool.publish` resolves per relay on ``OK`` (NIP-01) or on timeout; events for
  a disconnected relay wait in memory and are sent on (re)connect. Durable storage is the
  caller's (the appliance's outbox); a timed-out publish is forgotten here.
* Subscriptions are re-sent on every reconnect. Every incoming event passes the session's
  checks (cheap ones first, then id recompute and BIP-340 verify) before the callback sees
  it; rejects are counted by reason.
* NIP-42: on ``AUTH`` with a signer configured the pool answers with a signed kind 22242;
  an ``OK false "auth-required: …"`` publish is retried once after authentication.
* A relay that exceeds its misbehaviour budget is disconnected (1008) and backed off harder.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from relay_client.event import NostrEvent
from relay_client.messages import MAX_FRAME_BYTES, Filter, build_auth_event, req_message
from relay_client.session import (
    AuthAnswered,
    AuthRequested,
    CloseRequested,
    DeliveredIds,
    EndOfStoredEvents,
    EventReceived,
    EventRejected,
    NoticeReceived,
    PublishAnswered,
    RelaySession,
    SessionEvent,
    SessionLimits,
    Subscription,
    SubscriptionClosed,
)
from relay_client.signing import AsyncSigner, Signer

logger = logging.getLogger(__name__)

__all__ = [
    "EventCallback",
    "PoolConfig",
    "PublishResult",
    "RelayPool",
    "RelayPublishResult",
    "RelayState",
    "RelayStatus",
    "backoff_delay",
]

EventCallback = Callable[[NostrEvent, str], None]
"""Called as ``callback(event, relay_url)`` for each verified, deduplicated event."""


class RelayState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    #: was connected, connection dropped; a reconnect is scheduled
    DISCONNECTED = "disconnected"
    #: the last attempt failed or the relay was cut off for misbehaving; retry scheduled
    FAILED = "failed"
    #: the pool is closed
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Tunables. Defaults follow docs/threat-model.md §nostr-relays; tests shrink the times."""

    backoff_initial: float = 1.0
    backoff_factor: float = 1.5
    backoff_max: float = 300.0
    #: delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter]
    backoff_jitter: float = 0.2
    #: a connection must stay up this long before its failure counter resets
    stable_after: float = 30.0
    #: extra failure steps added after a misbehaviour disconnect
    misbehaviour_penalty: int = 4
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    publish_timeout: float = 30.0
    #: websockets ``max_size``: larger frames close the connection with 1009
    max_frame_bytes: int = MAX_FRAME_BYTES
    #: websockets ``max_queue``: frames buffered before TCP back-pressure
    max_queue: int = 32
    #: protocol strikes tolerated per connection before it is cut
    misbehaviour_budget: int = 20
    #: NOTICE / AUTH frames tolerated per connection before each one counts as a strike
    notice_budget: int = 50
    auth_budget: int = 5
    #: LRU of delivered event ids (100k)
    dedup_size: int = 100_000
    #: events dated further ahead than this are rejected (+15 min)
    max_future_seconds: int = 900
    user_agent: str = "hearth-relay-client"
    #: websockets ``proxy``; ``None`` ignores proxy environment variables
    proxy: str | None = None

    def session_limits(self) -> SessionLimits:
        return SessionLimits(misbehaviour_budget=self.misbehaviour_budget,
                             notice_budget=self.notice_budget, auth_budget=self.auth_budget,
                             max_future_seconds=self.max_future_seconds)


def backoff_delay(config: PoolConfig, failures: int) -> float:
    """Jittered exponential backoff after ``failures`` consecutive failures."""
    base = min(config.backoff_max,
               config.backoff_initial * config.backoff_factor ** max(0, failures - 1))
    jitter = random.uniform(1.0 - config.backoff_jitter, 1.0 + config.backoff_jitter)
    return min(config.backoff_max, base * jitter)


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """Snapshot of one relay, for the TUI/admin API."""

    url: str
    state: RelayState
    last_error: str | None = None
    #: wall-clock time of the last ``OK true``
    last_ok_at: float | None = None
    connected_since: float | None = None
    #: consecutive failed connection attempts
    failures: int = 0
    #: wall-clock time of the next connection attempt when not connected
    next_attempt_at: float | None = None
    published: int = 0
    rejected: int = 0
    rejected_events: int = 0
    malformed_frames: int = 0
    pending: int = 0
    authenticated: bool = False


@dataclass(frozen=True, slots=True)
class RelayPublishResult:
    """One relay's answer to one publish (``message`` is the NIP-01 OK message)."""

    relay_url: str
    event_id: str
    accepted: bool
    message: str

    @property
    def prefix(self) -> str:
        """NIP-01 machine-readable prefix of ``message`` (``invalid``, ``rate-limited``…)."""
        head, sep, _ = self.message.partition(":")
        return head.strip() if sep and " " not in head.strip() else ""


@dataclass(frozen=True, slots=True)
class PublishResult:
    event_id: str
    results: tuple[RelayPublishResult, ...]

    @property
    def accepted(self) -> bool:
        """Product rule: a publish counts only if at least one relay said ``OK true``."""
        return any(r.accepted for r in self.results)

    @property
    def accepted_by(self) -> tuple[str, ...]:
        return tuple(r.relay_url for r in self.results if r.accepted)


@dataclass(frozen=True, slots=True)
class _Listener:
    callback: EventCallback
    on_eose: Callable[[str], None] | None


@dataclass(frozen=True, slots=True)
class _Hooks:
    """What a connection tells its pool (explicit, instead of reaching into it)."""

    deliver: Callable[[str, NostrEvent, str], None]
    eose: Callable[[str, str], None]
    rejected: Callable[[str], None]
    status: Callable[[RelayStatus], None]
    publish_result: Callable[[RelayPublishResult], None]
    signer: Signer | AsyncSigner | None


class _Misbehaving(Exception):
    """Raised inside a connection to cut off a relay that exhausted its budget."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        frame = exc.sent if exc.rcvd is None else exc.rcvd
        if exc.sent is not None and exc.sent.code == 1009:
            return "relay sent a frame larger than max_size"
        if frame is None:
            return "connection lost without a close frame"
        return f"connection closed: code {frame.code} {frame.reason!r}".rstrip()
    if isinstance(exc, InvalidStatus):
        return f"handshake rejected: HTTP {exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class _Connection:
    """The I/O loop of one relay around its :class:`RelaySession`."""

    def __init__(self, url: str, config: PoolConfig, session: RelaySession,
                 hooks: _Hooks) -> None:
        self.url = url
        self.config = config
        self.session = session
        self.hooks = hooks
        self.status = RelayStatus(url=url, state=RelayState.DISCONNECTED)
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._futures: dict[str, asyncio.Future[RelayPublishResult]] = {}
        self._wake = asyncio.Event()
        self._close_request: CloseRequested | None = None
        self._aux_tasks: set[asyncio.Task[None]] = set()
        # Connection-level status fields (the session owns the protocol counters).
        self._state = RelayState.DISCONNECTED
        self._last_error: str | None = None
        self._connected_since: float | None = None
        self._failures = 0
        self._next_attempt_at: float | None = None

    # -- status ------------------------------------------------------------------------

    def _sync_status(self) -> None:
        c = self.session.counters
        last_error = self._last_error
        if self._state is RelayState.CONNECTED and c.last_protocol_error is not None:
            last_error = c.last_protocol_error
        snap = RelayStatus(
            url=self.url, state=self._state, last_error=last_error, last_ok_at=c.last_ok_at,
            connected_since=self._connected_since, failures=self._failures,
            next_attempt_at=self._next_attempt_at, published=c.published, rejected=c.rejected,
            rejected_events=c.rejected_events, malformed_frames=c.malformed_frames,
            pending=self.session.pending, authenticated=self.session.authenticated)
        if snap != self.status:
            self.status = snap
            self.hooks.status(snap)

    # -- session plumbing ----------------------------------------------------------------

    def _after_input(self) -> None:
        """Act on what the session produced, wake the writer, publish the status."""
        self._dispatch(self.session.events())
        if self.session.has_frames_to_send():
            self._wake.set()
        self._sync_status()

    def _dispatch(self, events: list[SessionEvent]) -> None:
        for ev in events:
            if isinstance(ev, EventReceived):
                self.hooks.deliver(ev.subscription_id, ev.event, self.url)
            elif isinstance(ev, PublishAnswered):
                self._answer(ev)
            elif isinstance(ev, EventRejected):
                self.hooks.rejected(ev.reason)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("relay %s: dropped event (%s): %s", self.url, ev.reason,
                                 ev.detail[:200])
            elif isinstance(ev, EndOfStoredEvents):
                self.hooks.eose(ev.subscription_id, self.url)
            elif isinstance(ev, AuthRequested):
                self._spawn_auth(ev.challenge)
            elif isinstance(ev, CloseRequested):
                self._close_request = ev
            else:
                self._log_relay_says(ev)

    def _log_relay_says(self, ev: SessionEvent) -> None:
        """Events that only inform the operator: NOTICE, CLOSED, the AUTH verdict."""
        if isinstance(ev, NoticeReceived):
            logger.info("relay %s NOTICE: %s", self.url, ev.message[:200])
        elif isinstance(ev, SubscriptionClosed):
            logger.warning("relay %s closed subscription %s: %s", self.url,
                           ev.subscription_id, ev.message[:200])
        elif isinstance(ev, AuthAnswered):
            if ev.accepted:
                logger.info("relay %s: NIP-42 authenticated", self.url)
            else:
                logger.warning("relay %s rejected our AUTH: %s", self.url, ev.message[:200])

    def _answer(self, ev: PublishAnswered) -> None:
        result = RelayPublishResult(self.url, ev.event_id, ev.accepted, ev.message)
        fut = self._futures.pop(ev.event_id, None)
        if fut is not None and not fut.done():
            fut.set_result(result)
        self.hooks.publish_result(result)

    # -- publishing ----------------------------------------------------------------------

    def enqueue(self, event: NostrEvent) -> asyncio.Future[RelayPublishResult]:
        existing = self._futures.get(event.id)
        if existing is not None:
            return existing
        fut: asyncio.Future[RelayPublishResult] = asyncio.get_running_loop().create_future()
        self._futures[event.id] = fut
        self.session.publish(event)
        self._after_input()
        return fut

    def cancel(self, event_id: str, message: str) -> None:
        self.session.cancel_publish(event_id, message)
        self._after_input()

    def subscribe(self, sub: Subscription) -> None:
        self.session.subscribe(sub)
        self._after_input()

    def unsubscribe(self, sub_id: str) -> None:
        self.session.unsubscribe(sub_id)
        self._after_input()

    # -- NIP-42 --------------------------------------------------------------------------

    def _spawn_auth(self, challenge: str) -> None:
        task = asyncio.create_task(self._authenticate(challenge), name=f"relay-auth:{self.url}")
        self._aux_tasks.add(task)
        task.add_done_callback(self._aux_tasks.discard)

    async def _authenticate(self, challenge: str) -> None:
        signer = self.hooks.signer
        if signer is None:
            return
        try:
            result = signer.sign_event(build_auth_event(self.url, challenge))
            event = result if isinstance(result, NostrEvent) else await result
        except Exception as exc:  # a signer failure must not kill the connection
            logger.warning("relay %s: signing AUTH failed: %s", self.url, exc)
            return
        self.session.authenticate(event)
        self._after_input()

    # -- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"relay:{self.url}")

    async def stop(self, message: str) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait({self.task})  # never swallows the caller's cancellation
        for event_id in self.session.pending_ids():
            self.session.cancel_publish(event_id, message)
        self._state, self._next_attempt_at = RelayState.CLOSED, None
        self._after_input()

    async def _run(self) -> None:
        cfg = self.config
        while True:
            self._state, self._next_attempt_at = RelayState.CONNECTING, None
            self._sync_status()
            connected_at: float | None = None
            misbehaved = False
            try:
                async with connect(
                    self.url, max_size=cfg.max_frame_bytes, max_queue=cfg.max_queue,
                    open_timeout=cfg.open_timeout, close_timeout=cfg.close_timeout,
                    ping_interval=cfg.ping_interval, ping_timeout=cfg.ping_timeout,
                    user_agent_header=cfg.user_agent, proxy=cfg.proxy,
                ) as ws:
                    connected_at = time.monotonic()
                    self._opened()
                    try:
                        await self._serve(ws)
                        error = "connection closed by relay"
                    finally:
                        self._closed()
            except asyncio.CancelledError:
                raise
            except _Misbehaving as exc:
                error = f"misbehaving relay disconnected: {exc}"
                misbehaved = True
            except (OSError, TimeoutError, WebSocketException) as exc:
                error = _describe(exc)
                if isinstance(exc, ConnectionClosed) and exc.sent is not None:
                    misbehaved = exc.sent.code == 1009  # oversized frame
            except Exception as exc:  # keep the pool alive whatever a relay does
                logger.exception("relay %s: unexpected error", self.url)
                error = _describe(exc)

            stable = connected_at is not None and (
                time.monotonic() - connected_at >= cfg.stable_after)
            self._failures = 1 if stable else self._failures + 1
            if misbehaved:
                self._failures += cfg.misbehaviour_penalty
            delay = backoff_delay(cfg, self._failures)
            self._state = (RelayState.DISCONNECTED if connected_at is not None and not misbehaved
                           else RelayState.FAILED)
            logger.info("relay %s closed: %s (retry in %.1fs)", self.url, error, delay)
            self._last_error, self._connected_since = error, None
            self._next_attempt_at = time.time() + delay
            self._sync_status()
            await asyncio.sleep(delay)

    def _opened(self) -> None:
        self._close_request = None
        self.session.connection_made()
        self.connected.set()
        logger.info("relay %s connected", self.url)
        self._state, self._connected_since = RelayState.CONNECTED, time.time()
        self._next_attempt_at = None
        self._after_input()

    def _closed(self) -> None:
        self.connected.clear()
        for t in self._aux_tasks:
            t.cancel()
        self._aux_tasks.clear()
        self.session.connection_lost()

    async def _serve(self, ws: ClientConnection) -> None:
        reader = asyncio.create_task(self._read_loop(ws), name=f"relay-read:{self.url}")
        writer = asyncio.create_task(self._write_loop(ws), name=f"relay-write:{self.url}")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (reader, writer):
                t.cancel()
            # asyncio.wait, not ``await t`` under suppress(CancelledError): that would also
            # swallow *our* cancellation (pool.close() cancelling this task) and hang close().
            await asyncio.wait({reader, writer})
        for t in done:
            exc = t.exception()
            if exc is not None:
                raise exc

    async def _read_loop(self, ws: ClientConnection) -> None:
        async for raw in ws:
            self.session.receive_frame(raw)
            self._after_input()
            request = self._close_request
            if request is not None:
                await ws.close(request.code, "protocol violations")
                raise _Misbehaving(request.reason)

    async def _write_loop(self, ws: ClientConnection) -> None:
        while True:
            self._wake.clear()
            frames = self.session.frames_to_send()
            if not frames:
                await self._wake.wait()
                continue
            for frame in frames:
                await ws.send(frame)


class RelayPool:
    """Connections to a set of relays; see the module docstring for the contracts.

    Use as ``async with RelayPool([...], signer=...) as pool:`` or call :meth:`start` /
    :meth:`close`. All methods must be called from the event loop that runs the pool.
    """

    def __init__(
        self,
        relays: Iterable[str] = (),
        *,
        signer: Signer | AsyncSigner | None = None,
        config: PoolConfig | None = None,
        on_status_change: Callable[[RelayStatus], None] | None = None,
        on_publish_result: Callable[[RelayPublishResult], None] | None = None,
    ) -> None:
        self.config = config or PoolConfig()
        self.signer = signer
        self.on_status_change = on_status_change
        self.on_publish_result = on_publish_result
        self._connections: dict[str, _Connection] = {}
        self._subs: dict[str, Subscription] = {}
        self._listeners: dict[str, _Listener] = {}
        self._delivered = DeliveredIds(self.config.dedup_size)
        self._rejected_events: Counter[str] = Counter()
        self._unexpected_oks_gone = 0
        self._started = False
        self._initial = list(dict.fromkeys(relays))
        self._hooks = _Hooks(deliver=self._deliver, eose=self._eose,
                             rejected=self._count_rejected, status=self._emit_status,
                             publish_result=self._emit_publish_result, signer=signer)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> RelayPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start one connection task per configured relay (returns immediately)."""
        if self._started:
            return
        self._started = True
        for url in self._initial:
            self.add_relay(url)

    def add_relay(self, url: str) -> None:
        """Add a relay and start connecting to it (no-op if present)."""
        if url in self._connections:
            return
        session = RelaySession(url, delivered=self._delivered,
                               can_authenticate=self.signer is not None,
                               limits=self.config.session_limits())
        for sub in self._subs.values():
            session.subscribe(sub)
        conn = _Connection(url, self.config, session, self._hooks)
        self._connections[url] = conn
        if self._started:
            conn.start()

    async def remove_relay(self, url: str) -> None:
        """Disconnect and forget a relay; its pending publishes resolve as failed."""
        conn = self._connections.pop(url, None)
        if conn is not None:
            self._unexpected_oks_gone += conn.session.counters.unexpected_oks
            await conn.stop("error: relay removed from pool")

    async def close(self) -> None:
        """Stop every connection; pending publishes resolve with ``error: pool closed``."""
        conns = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.stop("error: pool closed") for c in conns))
        self._started = False

    # -- status ----------------------------------------------------------------------

    @property
    def relay_urls(self) -> tuple[str, ...]:
        return tuple(self._connections)

    def statuses(self) -> tuple[RelayStatus, ...]:
        """Immutable snapshot of every relay's state and counters."""
        return tuple(c.status for c in self._connections.values())

    def status(self, url: str) -> RelayStatus:
        return self._connections[url].status

    @property
    def rejected_events(self) -> Mapping[str, int]:
        """Dropped inbound events by reason (``bad-signature``, ``bad-id``, ``invalid``, …)."""
        return dict(self._rejected_events)

    @property
    def duplicate_events(self) -> int:
        """Events received again (from another relay or a re-sent REQ) and not re-delivered."""
        return self._delivered.duplicates

    @property
    def unexpected_oks(self) -> int:
        """``OK`` frames for events never sent on that connection."""
        return self._unexpected_oks_gone + sum(
            c.session.counters.unexpected_oks for c in self._connections.values())

    async def wait_connected(self, url: str | None = None, timeout: float = 10.0) -> None:
        """Wait until ``url`` (or every relay) is connected.

        Raises:
            TimeoutError: not connected within ``timeout`` seconds.
        """
        conns = ([self._connections[url]] if url is not None
                 else list(self._connections.values()))
        async with asyncio.timeout(timeout):
            for c in conns:
                await c.connected.wait()

    # -- publish ---------------------------------------------------------------------

    async def publish(
        self,
        event: NostrEvent,
        *,
        timeout: float | None = None,
        relays: Sequence[str] | None = None,
    ) -> PublishResult:
        """Send ``event`` to every relay (or ``relays``) and wait for their ``OK``.

        Relays that are down get the event when they reconnect, within ``timeout``
        (default :attr:`PoolConfig.publish_timeout`). A relay without an answer by then
        yields ``accepted=False, message="timeout: …"`` and the event is dropped from
        its queue. With zero relays the result is empty (``accepted`` is ``False``).
        """
        timeout = self.config.publish_timeout if timeout is None else timeout
        targets = ([self._connections[u] for u in relays] if relays is not None
                   else list(self._connections.values()))
        futures = [c.enqueue(event) for c in targets]
        if futures:
            await asyncio.wait(futures, timeout=timeout)
        results: list[RelayPublishResult] = []
        for conn, fut in zip(targets, futures, strict=True):
            if not fut.done():
                conn.cancel(event.id, f"timeout: no OK within {timeout:g}s")
            results.append(fut.result())
        return PublishResult(event.id, tuple(results))

    # -- subscriptions ---------------------------------------------------------------

    def subscribe(
        self,
        sub_id: str,
        filters: Sequence[Filter],
        callback: EventCallback,
        *,
        on_eose: Callable[[str], None] | None = None,
        max_age: int | None = None,
    ) -> None:
        """Open (or replace) subscription ``sub_id`` on every relay, now and on reconnect.

        Args:
            filters: NIP-01 filters, OR-ed; events not matching any are dropped.
            callback: ``callback(event, relay_url)`` for verified, deduplicated events.
            on_eose: ``on_eose(relay_url)`` when a relay finishes stored events.
            max_age: drop events older than this many seconds (chat: 7 days).
        """
        req_message(sub_id, *filters)  # validates sub_id and filters before any change
        sub = Subscription(sub_id, tuple(filters), max_age)
        self._subs[sub_id] = sub
        self._listeners[sub_id] = _Listener(callback, on_eose)
        for conn in self._connections.values():
            conn.subscribe(sub)

    def unsubscribe(self, sub_id: str) -> None:
        if self._subs.pop(sub_id, None) is None:
            return
        self._listeners.pop(sub_id, None)
        for conn in self._connections.values():
            conn.unsubscribe(sub_id)

    # -- hooks (called by connections) -------------------------------------------------

    def _backoff_delay(self, failures: int) -> float:
        return backoff_delay(self.config, failures)

    def _deliver(self, sub_id: str, event: NostrEvent, url: str) -> None:
        listener = self._listeners.get(sub_id)
        if listener is not None:
            self._call(listener.callback, event, url)

    def _eose(self, sub_id: str, url: str) -> None:
        listener = self._listeners.get(sub_id)
        if listener is not None and listener.on_eose is not None:
            self._call(listener.on_eose, url)

    def _count_rejected(self, reason: str) -> None:
        self._rejected_events[reason] += 1

    def _emit_status(self, status: RelayStatus) -> None:
        if self.on_status_change is not None:
            self._call(self.on_status_change, status)

    def _emit_publish_result(self, result: RelayPublishResult) -> None:
        if self.on_publish_result is not None:
            self._call(self.on_publish_result, result)

    @staticmethod
    def _call(fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("relay_client callback %r failed", fn)
