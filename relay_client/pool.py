"""A pool of Nostr relay connections on ``websockets`` (asyncio): pure transport.

One long-lived task per relay connects, serves, and reconnects with jittered exponential
backoff (bad-input §4.4: 1 s × 1.5, capped at 5 min). While connected, a reader and a writer
run side by side: the writer drains control frames (REQ/CLOSE/AUTH) and then unsent events;
the reader parses frames with the sans-IO codec in :mod:`relay_client.messages`.

Contracts:

* :meth:`RelayPool.publish` resolves per relay on ``OK`` (NIP-01) or on timeout; events for
  a disconnected relay wait in memory and are sent on (re)connect. Durable storage is the
  caller's (the appliance's outbox); a timed-out publish is forgotten here.
* Subscriptions are re-sent on every reconnect. Every incoming event passes the cheap
  checks (subscription known, time window, filter match, dedup), then id recompute and
  BIP-340 verify, before the callback sees it (bad-input B17); rejects are counted by
  reason.
* NIP-42: on ``AUTH`` with a signer configured the pool answers with a signed kind 22242;
  an ``OK false "auth-required: …"`` publish is retried once after authentication.
* A relay that exceeds its misbehaviour budget (malformed frames, invalid events, ``OK``
  for unknown ids, floods — bad-input B18) is disconnected and backed off harder.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from relay_client.event import EventError, NostrEvent
from relay_client.messages import (
    MAX_FRAME_BYTES,
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
    build_auth_event,
    close_message,
    event_message,
    parse_relay_message,
    req_message,
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
    """Tunables. Defaults follow bad-input §4.4; tests shrink the time values."""

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
    #: protocol strikes tolerated per connection before it is cut (B18)
    misbehaviour_budget: int = 20
    #: NOTICE / AUTH frames tolerated per connection before each one counts as a strike
    notice_budget: int = 50
    auth_budget: int = 5
    #: LRU of delivered event ids (bad-input §4.4: 100k)
    dedup_size: int = 100_000
    #: events dated further ahead than this are rejected (bad-input §4.4: +15 min)
    max_future_seconds: int = 900
    user_agent: str = "hearth-relay-client"
    #: websockets ``proxy``; ``None`` ignores proxy environment variables
    proxy: str | None = None


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


@dataclass(slots=True)
class _Subscription:
    sub_id: str
    filters: tuple[Filter, ...]
    callback: EventCallback
    on_eose: Callable[[str], None] | None
    max_age: int | None


@dataclass(slots=True)
class _Pending:
    event: NostrEvent
    future: asyncio.Future[RelayPublishResult]
    sent: bool = False
    #: held back until NIP-42 authentication succeeds
    hold: bool = False
    auth_retried: bool = False


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


class _Relay:
    """One relay connection; private helper of :class:`RelayPool`."""

    def __init__(self, pool: RelayPool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.status = RelayStatus(url=url, state=RelayState.DISCONNECTED)
        self.outbox: dict[str, _Pending] = {}
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._control: deque[str] = deque()
        self._wake = asyncio.Event()
        self._strikes = 0
        self._notices = 0
        self._auths = 0
        self._challenge: str | None = None
        self._auth_event_id: str | None = None
        self._authenticated = False
        self._auth_sent = False
        self._closed_for_auth: set[str] = set()
        self._aux_tasks: set[asyncio.Task[None]] = set()

    # -- status ----------------------------------------------------------------------

    def _update(self, **changes: object) -> None:
        changes.setdefault("pending", len(self.outbox))
        changes.setdefault("authenticated", self._authenticated)
        self.status = replace(self.status, **changes)  # type: ignore[arg-type]
        self.pool._emit_status(self.status)

    # -- connection loop -------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"relay:{self.url}")

    async def _run(self) -> None:
        cfg = self.pool.config
        while True:
            self._update(state=RelayState.CONNECTING, next_attempt_at=None)
            connected_at: float | None = None
            error: str
            misbehaved = False
            try:
                async with connect(
                    self.url,
                    max_size=cfg.max_frame_bytes,
                    max_queue=cfg.max_queue,
                    open_timeout=cfg.open_timeout,
                    close_timeout=cfg.close_timeout,
                    ping_interval=cfg.ping_interval,
                    ping_timeout=cfg.ping_timeout,
                    user_agent_header=cfg.user_agent,
                    proxy=cfg.proxy,
                ) as ws:
                    connected_at = time.monotonic()
                    self._on_open(ws)
                    try:
                        await self._serve(ws)
                        error = "connection closed by relay"
                    finally:
                        self._on_close()
            except asyncio.CancelledError:
                raise
            except _Misbehaving as exc:
                error = f"misbehaving relay disconnected: {exc}"
                misbehaved = True
            except (OSError, TimeoutError, WebSocketException) as exc:
                error = _describe(exc)
                if isinstance(exc, ConnectionClosed) and exc.sent is not None:
                    misbehaved = exc.sent.code == 1009  # oversized frame (B18)
            except Exception as exc:  # keep the pool alive whatever a relay does
                logger.exception("relay %s: unexpected error", self.url)
                error = _describe(exc)

            failures = self.status.failures
            stable = connected_at is not None and (
                time.monotonic() - connected_at >= cfg.stable_after
            )
            failures = 1 if stable else failures + 1
            if misbehaved:
                failures += cfg.misbehaviour_penalty
            delay = self.pool._backoff_delay(failures)
            state = (
                RelayState.DISCONNECTED
                if connected_at is not None and not misbehaved
                else RelayState.FAILED
            )
            logger.info("relay %s closed: %s (retry in %.1fs)", self.url, error, delay)
            self._update(
                state=state,
                last_error=error,
                failures=failures,
                connected_since=None,
                next_attempt_at=time.time() + delay,
            )
            await asyncio.sleep(delay)

    def _on_open(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._strikes = self._notices = self._auths = 0
        self._challenge = self._auth_event_id = None
        self._authenticated = self._auth_sent = False
        self._closed_for_auth.clear()
        self._control.clear()
        for sub in self.pool._subs.values():
            self._control.append(req_message(sub.sub_id, *sub.filters))
        for p in self.outbox.values():
            p.sent = False
            p.hold = False
        self._wake.set()
        self.connected.set()
        logger.info("relay %s connected", self.url)
        self._update(state=RelayState.CONNECTED, connected_since=time.time(), next_attempt_at=None)

    def _on_close(self) -> None:
        self._ws = None
        self.connected.clear()
        self._authenticated = self._auth_sent = False
        for t in self._aux_tasks:
            t.cancel()
        self._aux_tasks.clear()
        for p in self.outbox.values():
            p.sent = False

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
            try:
                self._handle_frame(raw)
            except _Misbehaving:
                # 1008 = policy violation (RFC 6455 §7.4.1)
                await ws.close(1008, "protocol violations")
                raise

    async def _write_loop(self, ws: ClientConnection) -> None:
        while True:
            while True:
                if self._control:
                    await ws.send(self._control.popleft())
                    continue
                p = next((p for p in self.outbox.values() if not p.sent and not p.hold), None)
                if p is None:
                    break
                p.sent = True
                await ws.send(event_message(p.event))
            self._wake.clear()
            await self._wake.wait()

    def send_control(self, frame: str) -> None:
        if self._ws is not None:
            self._control.append(frame)
            self._wake.set()

    # -- publishing ------------------------------------------------------------------

    def enqueue(self, event: NostrEvent) -> asyncio.Future[RelayPublishResult]:
        existing = self.outbox.get(event.id)
        if existing is not None:
            return existing.future
        fut: asyncio.Future[RelayPublishResult] = asyncio.get_running_loop().create_future()
        self.outbox[event.id] = _Pending(event, fut)
        self._wake.set()
        self._update()
        return fut

    def resolve(self, event_id: str, accepted: bool, message: str) -> None:
        p = self.outbox.pop(event_id, None)
        if p is None:
            return
        result = RelayPublishResult(self.url, event_id, accepted, message)
        if not p.future.done():
            p.future.set_result(result)
        if accepted:
            self._update(published=self.status.published + 1, last_ok_at=time.time())
        else:
            self._update(rejected=self.status.rejected + 1)
        self.pool._emit_publish_result(result)

    # -- inbound ---------------------------------------------------------------------

    def _strike(self, reason: str) -> None:
        self._strikes += 1
        if self._strikes > self.pool.config.misbehaviour_budget:
            raise _Misbehaving(f"{self._strikes} protocol violations, last: {reason}")

    def _reject_event(self, reason: str, detail: str) -> None:
        self.pool._rejected_events[reason] += 1
        self._update(rejected_events=self.status.rejected_events + 1)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("relay %s: dropped event (%s): %s", self.url, reason, detail)

    def _handle_frame(self, raw: str | bytes) -> None:
        try:
            msg = parse_relay_message(raw)
        except InvalidEventMessage as exc:
            self._reject_event("invalid", exc.reason)
            self._strike(str(exc))
            return
        except RelayProtocolError as exc:
            self._update(malformed_frames=self.status.malformed_frames + 1, last_error=str(exc))
            logger.debug("relay %s: malformed frame: %s", self.url, exc)
            self._strike(str(exc))
            return
        if isinstance(msg, EventMessage):
            self._on_event(msg)
        elif isinstance(msg, Ok):
            self._on_ok(msg)
        elif isinstance(msg, Eose):
            sub = self.pool._subs.get(msg.subscription_id)
            if sub is not None and sub.on_eose is not None:
                self.pool._call(sub.on_eose, self.url)
        elif isinstance(msg, Closed):
            self._on_closed(msg)
        elif isinstance(msg, Notice):
            self._notices += 1
            if self._notices > self.pool.config.notice_budget:
                self._strike("NOTICE flood")
            else:
                logger.info("relay %s NOTICE: %s", self.url, msg.message[:200])
        elif isinstance(msg, Auth):
            self._on_auth(msg)

    def _on_event(self, msg: EventMessage) -> None:
        pool = self.pool
        sub = pool._subs.get(msg.subscription_id)
        ev = msg.event
        if sub is None:
            # NIP-01: EVENT only for subscriptions we opened (B18).
            self._reject_event("unknown-subscription", msg.subscription_id)
            self._strike("EVENT for unknown subscription")
            return
        now = time.time()
        if ev.created_at > now + pool.config.max_future_seconds:
            self._reject_event("created-at-future", ev.id)
            return
        if sub.max_age is not None and ev.created_at < now - sub.max_age:
            self._reject_event("created-at-too-old", ev.id)
            return
        if not any_filter_matches(sub.filters, ev):
            self._reject_event("filter-mismatch", ev.id)
            self._strike("event does not match the subscription filter")
            return
        delivered = pool._seen.get(ev.id)
        if delivered is not None and sub.sub_id in delivered:
            pool.duplicate_events += 1
            pool._seen.move_to_end(ev.id)
            return
        try:
            ev.check()
        except EventError as exc:
            reason = "bad-id" if "id does not match" in str(exc) else "bad-signature"
            if "surrogate" in str(exc):
                reason = "invalid"
            self._reject_event(reason, str(exc))
            self._strike(str(exc))
            return
        pool._mark_delivered(ev.id, sub.sub_id)
        pool._call(sub.callback, ev, self.url)

    def _on_ok(self, ok: Ok) -> None:
        if ok.event_id == self._auth_event_id:
            self._on_auth_ok(ok)
            return
        p = self.outbox.get(ok.event_id)
        if p is None or not p.sent:
            # OK for something we never sent on this connection (B18); may be a late
            # answer for a publish that timed out, so it is only a strike.
            self.pool.unexpected_oks += 1
            self._strike("OK for an unknown event id")
            return
        if (
            not ok.accepted
            and ok.prefix == "auth-required"
            and self.pool.signer is not None
            and not p.auth_retried
        ):
            # NIP-42: authenticate, then retry this event once.
            p.auth_retried = True
            p.sent = False
            if self._auth_sent:
                self._wake.set()
            else:
                p.hold = True
            return
        # NIP-01 shows "duplicate:" with true, but relays differ (nostr-relay 1.14 says
        # false); either way the relay holds the event, which is what a publish means.
        accepted = ok.accepted or ok.prefix == "duplicate"
        self.resolve(ok.event_id, accepted, ok.message)

    def _on_closed(self, msg: Closed) -> None:
        sub_id = msg.subscription_id
        if (
            msg.prefix == "auth-required"
            and self.pool.signer is not None
            and sub_id in self.pool._subs
            and sub_id not in self._closed_for_auth
        ):
            self._closed_for_auth.add(sub_id)
            if self._auth_sent:
                sub = self.pool._subs[sub_id]
                self.send_control(req_message(sub_id, *sub.filters))
            return
        logger.warning("relay %s closed subscription %s: %s", self.url, sub_id, msg.message[:200])

    def _on_auth(self, msg: Auth) -> None:
        self._auths += 1
        if self._auths > self.pool.config.auth_budget:
            self._strike("AUTH flood")
            return
        self._challenge = msg.challenge
        if self.pool.signer is None:
            logger.info("relay %s asked for NIP-42 AUTH; no signer configured", self.url)
            return
        task = asyncio.create_task(self._authenticate(msg.challenge), name=f"relay-auth:{self.url}")
        self._aux_tasks.add(task)
        task.add_done_callback(self._aux_tasks.discard)

    async def _authenticate(self, challenge: str) -> None:
        signer = self.pool.signer
        assert signer is not None
        unsigned = build_auth_event(self.url, challenge)
        try:
            result = signer.sign_event(unsigned)
            event = result if isinstance(result, NostrEvent) else await result
        except Exception as exc:
            logger.warning("relay %s: signing AUTH failed: %s", self.url, exc)
            return
        if self._ws is None:
            return
        self._auth_event_id = event.id
        self._control.append(auth_message(event))
        # The AUTH frame goes out before anything queued after it on this connection, so
        # held publishes and auth-closed subscriptions are retried right behind it (not
        # every relay answers AUTH with an OK; nostr-relay 1.14 does not).
        self._auth_sent = True
        for p in self.outbox.values():
            p.hold = False
        for sub_id in self._closed_for_auth:
            sub = self.pool._subs.get(sub_id)
            if sub is not None:
                self._control.append(req_message(sub_id, *sub.filters))
        self._wake.set()

    def _on_auth_ok(self, ok: Ok) -> None:
        self._auth_event_id = None
        self._authenticated = ok.accepted
        self._update()
        if ok.accepted:
            logger.info("relay %s: NIP-42 authenticated", self.url)
        else:
            logger.warning("relay %s rejected our AUTH: %s", self.url, ok.message[:200])


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
        self.duplicate_events = 0
        self.unexpected_oks = 0
        self._relays: dict[str, _Relay] = {}
        self._subs: dict[str, _Subscription] = {}
        self._seen: OrderedDict[str, set[str]] = OrderedDict()
        self._rejected_events: Counter[str] = Counter()
        self._started = False
        self._initial = list(dict.fromkeys(relays))

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
        if url in self._relays:
            return
        relay = _Relay(self, url)
        self._relays[url] = relay
        if self._started:
            relay.start()

    async def remove_relay(self, url: str) -> None:
        """Disconnect and forget a relay; its pending publishes resolve as failed."""
        relay = self._relays.pop(url, None)
        if relay is not None:
            await self._stop_relay(relay, "error: relay removed from pool")

    async def close(self) -> None:
        """Stop every connection; pending publishes resolve with ``error: pool closed``."""
        relays = list(self._relays.values())
        self._relays.clear()
        await asyncio.gather(*(self._stop_relay(r, "error: pool closed") for r in relays))
        self._started = False

    async def _stop_relay(self, relay: _Relay, message: str) -> None:
        if relay.task is not None:
            relay.task.cancel()
            await asyncio.wait({relay.task})  # never swallows the caller's cancellation
        for eid in list(relay.outbox):
            relay.resolve(eid, False, message)
        relay._update(state=RelayState.CLOSED, next_attempt_at=None)

    # -- status ----------------------------------------------------------------------

    @property
    def relay_urls(self) -> tuple[str, ...]:
        return tuple(self._relays)

    def statuses(self) -> tuple[RelayStatus, ...]:
        """Immutable snapshot of every relay's state and counters."""
        return tuple(r.status for r in self._relays.values())

    def status(self, url: str) -> RelayStatus:
        return self._relays[url].status

    @property
    def rejected_events(self) -> Mapping[str, int]:
        """Dropped inbound events by reason (``bad-signature``, ``bad-id``, ``invalid``, …)."""
        return dict(self._rejected_events)

    async def wait_connected(self, url: str | None = None, timeout: float = 10.0) -> None:
        """Wait until ``url`` (or every relay) is connected.

        Raises:
            TimeoutError: not connected within ``timeout`` seconds.
        """
        relays = [self._relays[url]] if url is not None else list(self._relays.values())
        async with asyncio.timeout(timeout):
            for r in relays:
                await r.connected.wait()

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
        targets = (
            [self._relays[u] for u in relays] if relays is not None else list(self._relays.values())
        )
        futures = [r.enqueue(event) for r in targets]
        if futures:
            await asyncio.wait(futures, timeout=timeout)
        results: list[RelayPublishResult] = []
        for relay, fut in zip(targets, futures, strict=True):
            if not fut.done():
                relay.resolve(event.id, False, f"timeout: no OK within {timeout:g}s")
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
            max_age: drop events older than this many seconds (chat: 7 days, §4.4).
        """
        frame = req_message(sub_id, *filters)  # validates sub_id and filters
        self._subs[sub_id] = _Subscription(sub_id, tuple(filters), callback, on_eose, max_age)
        for relay in self._relays.values():
            relay.send_control(frame)

    def unsubscribe(self, sub_id: str) -> None:
        if self._subs.pop(sub_id, None) is None:
            return
        frame = close_message(sub_id)
        for relay in self._relays.values():
            relay.send_control(frame)

    # -- internals -------------------------------------------------------------------

    def _backoff_delay(self, failures: int) -> float:
        cfg = self.config
        base = min(
            cfg.backoff_max, cfg.backoff_initial * cfg.backoff_factor ** max(0, failures - 1)
        )
        jitter = random.uniform(1.0 - cfg.backoff_jitter, 1.0 + cfg.backoff_jitter)
        return min(cfg.backoff_max, base * jitter)

    def _mark_delivered(self, event_id: str, sub_id: str) -> None:
        subs = self._seen.get(event_id)
        if subs is None:
            self._seen[event_id] = {sub_id}
            if len(self._seen) > self.config.dedup_size:
                self._seen.popitem(last=False)
        else:
            subs.add(sub_id)
            self._seen.move_to_end(event_id)

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
