"""Retention: which recordings to delete (a pure policy) and the periodic task applying it.

Rules, in order: a recording that is still being made, or that the operator marked ``keep``,
is never deleted. A finished recording older than its channel's ``max_age`` is deleted. Then,
while all recordings together (kept and live ones included: they use the disk too) exceed
the global ``disk_cap``, the oldest remaining deletable recording goes. Oldest = earliest end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionItem:
    """A recording as the policy sees it.

    Attributes:
        ended_at: epoch seconds; None while the recording is still being made.
        max_age: seconds its channel keeps recordings; None = no age limit.
    """

    broadcast_id: str
    ended_at: float | None
    bytes: int
    kept: bool = False
    max_age: float | None = None


def select_for_deletion(items: Sequence[RetentionItem], now: float,
                        disk_cap: int | None = None) -> list[str]:
    """Broadcast ids whose recordings should be deleted, oldest first."""
    deletable = sorted((i for i in items if i.ended_at is not None and not i.kept),
                       key=lambda i: (i.ended_at, i.broadcast_id))
    chosen: list[RetentionItem] = []
    for item in deletable:
        assert item.ended_at is not None
        if item.max_age is not None and now - item.ended_at > item.max_age:
            chosen.append(item)
    if disk_cap is not None:
        total = sum(max(0, i.bytes) for i in items) - sum(max(0, i.bytes) for i in chosen)
        for item in deletable:
            if total <= disk_cap:
                break
            if item in chosen:
                continue
            chosen.append(item)
            total -= max(0, item.bytes)
    ids = {i.broadcast_id for i in chosen}
    return [i.broadcast_id for i in deletable if i.broadcast_id in ids]


async def run_retention(list_items: Callable[[], Awaitable[Sequence[RetentionItem]]],
                        delete: Callable[[str, str], Awaitable[object]], now: float,
                        disk_cap: int | None) -> list[str]:
    """One pass: list, decide, delete each (``delete(id, reason)``). Returns what went."""
    items = await list_items()
    ids = select_for_deletion(items, now, disk_cap)
    by_id = {i.broadcast_id: i for i in items}
    for bid in ids:
        item = by_id[bid]
        aged = item.max_age is not None and item.ended_at is not None and (
            now - item.ended_at > item.max_age)
        reason = ("older than the channel's retention" if aged
                  else "the recordings disk cap was reached")
        try:
            await delete(bid, reason)
        except (OSError, LookupError) as exc:
            logger.warning("retention could not delete recording %s: %s", bid, exc)
        await asyncio.sleep(0)
    return ids
