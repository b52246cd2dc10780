"""NIP-25 reactions (kind 7) to a stream's live event and to its chat messages.

Reactions arrive from relays (same ``#a`` subscription as chat) and from the watch page
(browser-signed, checked like chat); each is stored once and announced on the bus as a
``ReactionAdded`` so pages update their counts live.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.bus import Bus, ReactionAdded
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.nostr.chat import display_text
from appliance.nostr.errors import ChatRejected
from appliance.nostr.outbox import Outbox, add_to_outbox
from relay_client import NostrEvent

logger = logging.getLogger(__name__)


def reaction_target(event: NostrEvent) -> str:
    """The reacted-to event id (NIP-25: the last ``e`` tag), or ``''`` for the activity."""
    ids = [v for v in event.tag_values("e") if len(v) == 64]
    return ids[-1] if ids else ""


class Reactions:
    """Stores and counts reactions."""

    def __init__(self, store: Store, bus: Bus, outbox: Outbox,
                 relays: tuple[str, ...]) -> None:
        self.store = store
        self.bus = bus
        self.outbox = outbox
        self.relays = relays

    async def add(self, event: NostrEvent, stream_id: str, *, publish: bool) -> bool:
        """Store a checked, verified kind 7 of ``stream_id``. Returns ``False`` for a
        duplicate.

        Raises:
            ChatRejected: it reacts to an event that is not a message of this stream.
        """
        target = reaction_target(event)
        if target:
            row = await self.store.read(lambda db: nq.get_chat(db, target))
            if row is None or row.stream_id != stream_id:
                raise ChatRejected("unknown-target", "that message is not in this chat")
        content = display_text(event.content, 64)
        relays = self.relays

        def tx(db: Any) -> bool:
            inserted = nq.insert_reaction(
                db, event_id=event.id, stream_id=stream_id, target=target, pubkey=event.pubkey,
                content=content, created_at=event.created_at, event_json=event.to_json())
            if inserted and publish:
                add_to_outbox(db, event, relays, stream_id=stream_id)
            return inserted

        if not await self.store.write(tx):
            return False
        if publish:
            await self.outbox.wake()
        self.bus.publish(ReactionAdded(stream_id=stream_id, target=target, content=content,
                                       pubkey=event.pubkey))
        return True

    async def counts(self, stream_id: str) -> dict[str, dict[str, int]]:
        """``{target: {content: count}}``; target ``''`` is the live event."""
        return await self.store.read(lambda db: nq.reaction_counts(db, stream_id))
