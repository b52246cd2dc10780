"""The webhook service: bus events → durable outbox rows → signed POSTs (docs/webhooks.md).

* **Enqueue.** A bus event that some endpoint wants becomes one delivery row per endpoint,
  all committed in one Store transaction *before* anything is sent; the row holds the
  delivery id (minted once) and the exact body, so a retry, or a restart after ``kill -9``,
  resends the same bytes under the same id and a receiver dedupes on it (at-least-once).
* **Send.** One task per endpoint delivers that endpoint's rows in order, one at a time; a
  semaphore bounds how many endpoints are mid-request at once. Each attempt has a total
  timeout, follows no redirect and reads at most :data:`MAX_RESPONSE_BYTES` of the answer, so
  a slow, dead or hostile receiver only delays its own queue (docs/threat-model.md
  §admin-socket). Nothing here runs on the media path: the bus drops our oldest events if this
  consumer ever falls behind, and ingest never waits for it.
* **Retry.** Anything but a 2xx is retried with exponential backoff and jitter
  (``webhooks.retry_base`` doubling up to ``webhooks.retry_cap``) until
  ``webhooks.max_attempts`` or ``webhooks.max_age``, then marked failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from appliance.api.schema import (
    BroadcastChange,
    ChatChange,
    RecordingChange,
    WebhookEventType,
    safe_text,
)
from appliance.bus import (
    BroadcastChanged,
    Bus,
    ChatChanged,
    PublisherRefused,
    RecordingChanged,
    RestreamFailed,
)
from appliance.config import WebhooksConfig
from appliance.db import Store
from appliance.db import webhook_queries as wq
from appliance.tasks import BackgroundTasks
from appliance.webhooks.payload import (
    WebhookError,
    build_body,
    headers,
    new_secret,
    parse_events,
    sanitise_error,
    validate_url,
    wants,
)

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024
"""Bytes of a receiver's answer read (for the error shown to the operator); the rest is not."""

BroadcastLookup = Callable[[str], Any]
"""``async (broadcast_id) -> Broadcast | None`` (the channel service's, injected)."""


class WebhookNotFound(LookupError):
    """No endpoint with that id."""


@dataclass(frozen=True, slots=True)
class Message:
    """One event as every endpoint that wants it will receive it (before its id is minted)."""

    type: WebhookEventType
    summary: str
    data: Mapping[str, Any]


def _discord_safe(text: str) -> str:
    # Receivers such as Discord turn "@everyone" in ``content`` into a ping: a zero-width
    # space after "@" keeps a title from pinging a server (docs/webhooks.md).
    return safe_text(text, 300).replace("@", "@\u200b")


class WebhookService:
    """Endpoints, their outbox and the sender tasks (see the module docstring)."""

    def __init__(self, store: Store, bus: Bus, config: WebhooksConfig, *,
                 base_url: Callable[[], str] = lambda: "",
                 broadcast: BroadcastLookup | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        self.base_url = base_url
        self._broadcast = broadcast
        self._clock = clock
        self._tasks = BackgroundTasks("webhooks")
        self._workers: dict[str, asyncio.Task[Any]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        """Attempts made (all endpoints, since start)."""

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start a sender per endpoint (pending rows from before a restart go first) and the
        bus consumer."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            trust_env=False, auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=self.config.concurrency, force_close=True))
        for ep in await self.store.read(wq.list_endpoints):
            self._start_worker(ep.id)
        ready = asyncio.Event()
        self._tasks.spawn(self._consume(ready), "webhooks-bus")
        await ready.wait()

    async def close(self) -> None:
        await self._tasks.close()
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _start_worker(self, endpoint_id: str) -> None:
        self._wake[endpoint_id] = asyncio.Event()
        self._workers[endpoint_id] = self._tasks.spawn(
            self._worker(endpoint_id), f"webhook-{endpoint_id}")

    # ---- operator actions ------------------------------------------------------------------

    async def create(self, url: str, events: list[str]) -> tuple[wq.EndpointRow, str]:
        """Add an endpoint; returns it and its secret (shown once, never listed).

        Raises:
            WebhookError: bad URL or event name.
        """
        url = validate_url(url)
        names = parse_events(events)
        endpoint_id = uuid.uuid4().hex[:12]
        secret = new_secret()
        now = self._clock()
        await self.store.write(lambda db: wq.insert_endpoint(
            db, endpoint_id=endpoint_id, url=url, secret=secret, events=names, now=now))
        self._start_worker(endpoint_id)
        return await self.get(endpoint_id), secret

    async def get(self, endpoint_id: str) -> wq.EndpointRow:
        ep = await self.store.read(lambda db: wq.get_endpoint(db, endpoint_id))
        if ep is None:
            raise WebhookNotFound(endpoint_id)
        return ep

    async def endpoints(self) -> list[wq.EndpointRow]:
        return await self.store.read(wq.list_endpoints)

    async def remove(self, endpoint_id: str) -> None:
        """Delete an endpoint and its undelivered rows. Raises :class:`WebhookNotFound`."""
        task = self._workers.pop(endpoint_id, None)
        self._wake.pop(endpoint_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not await self.store.write(lambda db: wq.delete_endpoint(db, endpoint_id)):
            raise WebhookNotFound(endpoint_id)

    async def test(self, endpoint_id: str) -> str:
        """Queue a ``webhook.test`` delivery to this endpoint only; returns its id."""
        await self.get(endpoint_id)
        msg = Message(WebhookEventType.TEST, "Hearth webhook test: this endpoint works.",
                      {"webhook_id": endpoint_id})
        ids = await self.emit(msg, only=endpoint_id)
        if not ids:
            raise WebhookNotFound(endpoint_id)
        return ids[0]

    # ---- enqueue ---------------------------------------------------------------------------

    async def emit(self, msg: Message, *, only: str | None = None) -> list[str]:
        """Commit one delivery per endpoint that wants ``msg`` (one transaction), then wake
        their senders. Returns the delivery ids."""
        cfg = self.config
        now = self._clock()
        created = int(now)

        def tx(db: Any) -> list[tuple[str, str]]:
            out: list[tuple[str, str]] = []
            for ep in wq.list_endpoints(db):
                if not ep.enabled or (only is not None and ep.id != only):
                    continue
                if only is None and not wants(ep.events, msg.type):
                    continue
                delivery_id = str(uuid.uuid4())
                body = build_body(delivery_id, msg.type.value, created, msg.summary, msg.data)
                dropped = wq.enqueue(db, delivery_id=delivery_id, endpoint_id=ep.id,
                                     event_type=msg.type.value, body=body, now=now,
                                     max_pending=cfg.max_pending)
                if dropped:
                    logger.warning("webhook %s: outbox full, dropped %d oldest deliveries",
                                   ep.id, dropped)
                out.append((ep.id, delivery_id))
            return out

        queued = await self.store.write(tx)
        for endpoint_id, _ in queued:
            wake = self._wake.get(endpoint_id)
            if wake is not None:
                wake.set()
        return [d for _, d in queued]

    # ---- bus -> messages -------------------------------------------------------------------

    async def _consume(self, ready: asyncio.Event) -> None:
        async with self.bus.subscribe(BroadcastChanged, RecordingChanged, PublisherRefused,
                                      ChatChanged, RestreamFailed) as events:
            ready.set()
            async for event in events:
                try:
                    msg = await self.message_for(event)
                    if msg is not None:
                        await self.emit(msg)
                except Exception:  # one bad event must not stop webhooks
                    logger.exception("webhooks: could not queue %s", type(event).__name__)

    async def message_for(self, event: object) -> Message | None:
        """The webhook message for a bus event, or None when no webhook reports it."""
        if isinstance(event, BroadcastChanged):
            return await self._broadcast_message(event)
        if isinstance(event, RecordingChanged):
            return self._recording_message(event)
        if isinstance(event, PublisherRefused):
            return Message(WebhookEventType.PUBLISHER_REFUSED,
                           _discord_safe(f"Hearth: {event.message}"),
                           {"count": event.count, "message": safe_text(event.message)})
        if isinstance(event, RestreamFailed):
            return Message(WebhookEventType.RESTREAM_FAILED,
                           _discord_safe(f"Hearth: restream to {event.server_url} failed "
                                         f"{event.failures} times: {event.error}"),
                           {"channel_id": event.channel_id, "target_id": event.target_id,
                            "server_url": event.server_url, "error": safe_text(event.error),
                            "failures": event.failures})
        if isinstance(event, ChatChanged) and event.reason is ChatChange.HIDDEN:
            m = event.message
            return Message(WebhookEventType.CHAT_FLAGGED,
                           "Hearth: a chat message was hidden by the host",
                           {"broadcast_id": event.stream_id, "message_id": m.id,
                            "pubkey": m.pubkey, "content": m.content,
                            "created_at": m.created_at})
        return None

    _BROADCAST_TYPES: Mapping[BroadcastChange, WebhookEventType] = {
        BroadcastChange.PLANNED: WebhookEventType.BROADCAST_PLANNED,
        BroadcastChange.STARTED: WebhookEventType.BROADCAST_LIVE,
        BroadcastChange.ENDED: WebhookEventType.BROADCAST_ENDED,
    }

    async def _broadcast_message(self, event: BroadcastChanged) -> Message | None:
        kind = self._BROADCAST_TYPES.get(event.reason)
        if kind is None:
            return None
        base = self.base_url()
        data: dict[str, Any] = {"broadcast_id": event.broadcast_id,
                                "channel_id": event.channel_id,
                                "watch_url": f"{base}/watch/{event.broadcast_id}"}
        title = ""
        b = None
        if self._broadcast is not None:
            with contextlib.suppress(LookupError):
                b = await self._broadcast(event.broadcast_id)
        if b is not None:
            title = b.title
            data.update(title=b.title, status=b.status.value, starts=b.starts,
                        started_at=b.started_at, ended_at=b.ended_at,
                        peak_viewers=b.peak_viewers, total_viewers=b.total_viewers,
                        end_reason=b.end_reason)
        verb = {WebhookEventType.BROADCAST_PLANNED: "Planned",
                WebhookEventType.BROADCAST_LIVE: "Live now",
                WebhookEventType.BROADCAST_ENDED: "Ended"}[kind]
        shown = f" {title!r}" if title else ""
        summary = _discord_safe(f"{verb}:{shown} {data['watch_url']}")
        return Message(kind, summary, data)

    def _recording_message(self, event: RecordingChanged) -> Message:
        bid = event.broadcast_id
        base = self.base_url()
        if event.reason is RecordingChange.READY:
            return Message(WebhookEventType.RECORDING_READY,
                           _discord_safe(f"Recording ready ({event.detail}): "
                                         f"{base}/watch/{bid}"),
                           {"broadcast_id": bid, "detail": event.detail,
                            "recording_url": f"{base}/vod/{bid}/index.m3u8",
                            "download_url": f"{base}/vod/{bid}/download.mp4"})
        return Message(WebhookEventType.RECORDING_DELETED,
                       _discord_safe(f"Recording of {bid} deleted: {event.detail}"),
                       {"broadcast_id": bid, "reason": safe_text(event.detail)})

    # ---- send ------------------------------------------------------------------------------

    async def _worker(self, endpoint_id: str) -> None:
        wake = self._wake[endpoint_id]
        while True:
            wake.clear()
            row = await self.store.read(functools.partial(wq.next_pending,
                                                          endpoint_id=endpoint_id))
            if row is None:
                await wake.wait()
                continue
            wait = row.next_attempt_at - self._clock()
            if wait > 0:
                # Sleep until the retry is due; a new event does not overtake it (order).
                await asyncio.sleep(min(wait, 60.0))
                continue
            async with self._slots:
                await self._attempt(endpoint_id, row)

    async def _attempt(self, endpoint_id: str, row: wq.DeliveryRow) -> None:
        secret = await self.store.read(lambda db: wq.endpoint_secret(db, endpoint_id))
        ep = await self.store.read(lambda db: wq.get_endpoint(db, endpoint_id))
        if secret is None or ep is None:
            return
        status, error = await self._post(ep.url, row, secret)
        ok = status is not None and 200 <= status < 300
        retry_at = None if ok else self._retry_at(row)
        if not ok:
            logger.info("webhook %s: delivery %s failed (attempt %d): %s", endpoint_id,
                        row.id, row.attempts + 1, error)
        await self.store.write(lambda db: wq.record_attempt(
            db, delivery_id=row.id, endpoint_id=endpoint_id, ok=ok, status=status,
            error=error, retry_at=retry_at, now=self._clock()))

    def _retry_at(self, row: wq.DeliveryRow) -> float | None:
        cfg = self.config
        now = self._clock()
        if row.attempts + 1 >= cfg.max_attempts or now - row.created_at >= cfg.max_age:
            return None
        delay = min(cfg.retry_cap, cfg.retry_base * 2.0 ** min(row.attempts, 40))
        return now + delay * random.uniform(0.75, 1.25)

    async def _post(self, url: str, row: wq.DeliveryRow,
                    secret: str) -> tuple[int | None, str | None]:
        """One attempt: ``(status, error)``; status None when there was no answer."""
        assert self._session is not None
        body = row.body.encode()
        ts = int(self._clock())
        self.sent += 1
        try:
            async with self._session.post(url, data=body, allow_redirects=False,
                                          headers=headers(row.id, secret, ts, body)) as resp:
                status = resp.status
                if 200 <= status < 300:
                    return status, None
                # Bounded: a receiver cannot make us read (or store) a large answer.
                snippet = await resp.content.read(MAX_RESPONSE_BYTES)
                where = ""
                if 300 <= status < 400:
                    where = " (redirects are not followed)"
                text = snippet.decode("utf-8", "replace")
                return status, sanitise_error(f"HTTP {status}{where}: {text}")
        except TimeoutError:
            return None, f"no answer within {self.config.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return None, sanitise_error(f"{type(exc).__name__}: {exc}")


__all__ = ["Message", "WebhookError", "WebhookNotFound", "WebhookService"]
