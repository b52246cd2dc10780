"""Host moderation commands: hide/unhide and pin chat messages, mute/unmute authors."""

from __future__ import annotations

import logging
import time

from appliance.api.schema import ChatChange, ChatMessage
from appliance.bus import Bus, ChatChanged, MuteChanged
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.nostr.errors import NostrNotFound
from appliance.nostr.identity import Identity, SigningDeferred
from appliance.nostr.intake import ChatIntake
from appliance.nostr.keys import parse_pubkey
from appliance.nostr.live_events import LiveEvents
from appliance.nostr.mutes import MUTE_LIST_KIND, MuteList
from appliance.nostr.outbox import Outbox, add_to_outbox
from relay_client import UnsignedEvent

logger = logging.getLogger(__name__)


class Moderation:
    """Each command commits, then announces a ``ChatChanged`` or ``MuteChanged`` on the bus."""

    def __init__(self, *, store: Store, bus: Bus, identity: Identity, mutes: MuteList,
                 intake: ChatIntake, live: LiveEvents, outbox: Outbox,
                 relays: tuple[str, ...]) -> None:
        self.store = store
        self.bus = bus
        self.identity = identity
        self.mutes = mutes
        self.intake = intake
        self.live = live
        self.outbox = outbox
        self.relays = relays

    async def set_hidden(self, stream_id: str, event_id: str, hidden: bool) -> ChatMessage:
        row = await self.store.write(lambda db: nq.set_hidden(db, stream_id, event_id, hidden))
        if row is None:
            raise NostrNotFound(event_id)
        msg = self.intake.message(row, await self.intake.pinned(stream_id))
        self.bus.publish(ChatChanged(stream_id=stream_id,
                                     reason=ChatChange.HIDDEN if hidden else ChatChange.UNHIDDEN,
                                     message=msg))
        return msg

    async def pin(self, stream_id: str, event_id: str) -> ChatMessage:
        """Set the 30311 ``pinned`` tag to this message and republish (NIP-53)."""
        row = await self.store.read(lambda db: nq.get_chat(db, event_id))
        if row is None or row.stream_id != stream_id:
            raise NostrNotFound(event_id)
        await self.store.write(lambda db: nq.set_pinned(db, stream_id, [event_id]))
        await self.live.publish_activity(stream_id)
        msg = self.intake.message(row, [event_id])
        self.bus.publish(ChatChanged(stream_id=stream_id, reason=ChatChange.PINNED,
                                     message=msg))
        return msg

    async def mute(self, pubkey_text: str) -> str:
        """Add to the host mute list (applied locally; published as kind 10000 when signing
        as the operator). Returns the hex pubkey."""
        pubkey = parse_pubkey(pubkey_text)
        await self.mutes.add(pubkey)
        await self._publish_mutes()
        self.bus.publish(MuteChanged(pubkey=pubkey, muted=True))
        return pubkey

    async def unmute(self, pubkey_text: str) -> str:
        pubkey = parse_pubkey(pubkey_text)
        await self.mutes.remove(pubkey)
        await self._publish_mutes()
        self.bus.publish(MuteChanged(pubkey=pubkey, muted=False))
        return pubkey

    def list_mutes(self) -> list[str]:
        return sorted(self.mutes.local)

    async def _publish_mutes(self) -> None:
        if not self.identity.can_sign_as_operator():
            return  # a mute list must be signed by the host; the service key cannot
        mutes = sorted(self.mutes.local | self.mutes.remote)
        relays = self.relays
        key = f"kind:{MUTE_LIST_KIND}"
        created_at = await self.store.write(
            lambda db: nq.claim_created_at(db, key, int(time.time())))
        try:
            event = await self.identity.sign(UnsignedEvent(
                kind=MUTE_LIST_KIND, content="", tags=tuple(("p", pk) for pk in mutes),
                created_at=created_at))
        except SigningDeferred as exc:
            logger.warning("nostr: mute list not published (signer): %s", exc)
            return
        if event.pubkey == self.identity.service_pubkey:
            return  # fallback signature: a service-key mute list would mean nothing
        await self.store.write(lambda db: add_to_outbox(
            db, event, relays, supersede_key=f"{MUTE_LIST_KIND}:{event.pubkey}"))
        await self.outbox.wake()
