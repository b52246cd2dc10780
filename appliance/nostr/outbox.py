"""The durable Nostr outbox: committed before sent, retried until a relay says ``OK true``.

Every event is committed to ``nostr_outbox`` (with one delivery row per relay) *before* it is
sent; a delivery is done only on ``OK true`` and is otherwise retried with jittered backoff,
across restarts. NIP-01 ``OK false`` prefixes that will not change on retry (``invalid``,
``blocked``, ``pow``) give up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from typing import Any

from appliance.api.schema import RelayInfo, safe_text
from appliance.bus import Bus, RelayChanged
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.tasks import BackgroundTasks
from relay_client import NostrEvent, RelayPool, RelayState, RelayStatus

logger = logging.getLogger(__name__)

# NIP-01 OK prefixes that will not change on retry.
_PERMANENT = frozenset({"invalid", "blocked", "pow"})


def add_to_outbox(db: Any, event: NostrEvent, relays: tuple[str, ...], *,
                  stream_id: str | None = None, supersede_key: str | None = None) -> None:
    """Inside a Store write transaction: queue ``event`` for every relay (NIP-01: a newer
    version of a replaceable/addressable event supersedes an unsent older one)."""
    nq.enqueue_event(db, event_id=event.id, kind=event.kind, event_json=event.to_json(),
                     created_at=event.created_at, relays=relays, stream_id=stream_id,
                     supersede_key=supersede_key)


class Outbox:
    """Sends what ``nostr_outbox`` holds through ``pool``; publishes per-relay state."""

    def __init__(self, store: Store, bus: Bus, pool: RelayPool, relays: tuple[str, ...],
                 tasks: BackgroundTasks) -> None:
        self.store = store
        self.bus = bus
        self.pool = pool
        self.relays = relays
        self._tasks = tasks
        self._pending: dict[str, int] = {}
        self._inflight: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()

    async def load(self) -> None:
        self._pending = await self.store.read(nq.pending_counts)

    async def enqueue(self, event: NostrEvent, *, stream_id: str | None = None,
                      supersede_key: str | None = None) -> None:
        """Commit ``event`` to the outbox (durable before return) and wake the sender."""
        relays = self.relays
        await self.store.write(lambda db: add_to_outbox(
            db, event, relays, stream_id=stream_id, supersede_key=supersede_key))
        await self.wake()

    async def wake(self) -> None:
        """Call after committing outbox rows in a transaction of one's own."""
        self._wake.set()
        await self._refresh_pending()

    async def _refresh_pending(self) -> None:
        counts = await self.store.read(nq.pending_counts)
        changed = counts != self._pending
        self._pending = counts
        if changed:
            for st in self.pool.statuses():
                self.bus.publish(RelayChanged(relay=self.relay_info(st)))

    async def run(self) -> None:
        """The sender loop (one task): start deliveries that are due, then sleep ≤ 1 s."""
        while True:
            relays = self.relays
            if relays:
                due = await self.store.read(functools.partial(
                    nq.due_deliveries, relays=relays, now=time.time()))
                for d in due:
                    key = (d.event_id, d.relay)
                    if key not in self._inflight:
                        self._inflight.add(key)
                        self._tasks.spawn(self._deliver(d), f"nostr-send-{d.event_id[:8]}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    async def _deliver(self, d: nq.Delivery) -> None:
        try:
            event = NostrEvent.from_json(d.event_json)
            result = await self.pool.publish(event, relays=[d.relay])
            r = result.results[0]
            retry_at: float | None = None
            if not r.accepted:
                if r.prefix not in _PERMANENT:
                    delay = min(300.0, 2.0 * 1.5 ** min(d.attempts, 20))
                    retry_at = time.time() + delay * random.uniform(0.8, 1.2)
                logger.info("nostr: %s not accepted by %s: %s", d.event_id[:12], d.relay,
                            r.message[:200])
            await self.store.write(lambda db: nq.record_delivery(
                db, d.event_id, d.relay, r.accepted, r.message, retry_at))
            await self._refresh_pending()
        finally:
            self._inflight.discard((d.event_id, d.relay))

    # ---- relay state -----------------------------------------------------------------------

    def relay_info(self, st: RelayStatus) -> RelayInfo:
        state = st.state.value if st.state is not RelayState.CLOSED else "disconnected"
        # A relay's error text (NOTICE, CLOSED reasons) is chosen by the relay: inert for the TUI.
        last_error = safe_text(st.last_error) if st.last_error else st.last_error
        return RelayInfo(url=st.url, state=state, last_error=last_error,
                         last_ok_at=st.last_ok_at, failures=st.failures, published=st.published,
                         rejected=st.rejected, outbox_depth=self._pending.get(st.url, 0))

    def on_relay_status(self, st: RelayStatus) -> None:
        self.bus.publish(RelayChanged(relay=self.relay_info(st)))
        if st.state is RelayState.CONNECTED:
            self._wake.set()  # deliveries waiting for this relay go now

    def relay_infos(self) -> list[RelayInfo]:
        """Per-relay state for ``GET /v1/relays`` (and the TUI)."""
        return [self.relay_info(st) for st in self.pool.statuses()]
