"""A stream's NIP-75 zap goal: a kind 9041 signed as the operator, linked from the stream's
30311 with ``["goal", <id>]`` (as zap.stream does), progress = the zap receipts (9735) of this
stream that zap the goal event."""

from __future__ import annotations

from typing import Any

from appliance.bus import Bus, GoalChanged
from appliance.channels import ChannelService
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.nostr.errors import SignerUnavailableError
from appliance.nostr.identity import Identity, SigningDeferred
from appliance.nostr.intake import ChatIntake
from appliance.nostr.live_events import LiveEvents
from appliance.nostr.outbox import Outbox, add_to_outbox
from relay_client.live import build_goal

MAX_TITLE_CHARS = 200
MAX_SATS = 21_000_000 * 100_000_000


class Goals:
    """Sets and reads goals."""

    def __init__(self, *, store: Store, bus: Bus, streams: ChannelService, identity: Identity,
                 outbox: Outbox, intake: ChatIntake, live: LiveEvents,
                 relays: tuple[str, ...]) -> None:
        self.store = store
        self.bus = bus
        self.streams = streams
        self.identity = identity
        self.outbox = outbox
        self.intake = intake
        self.live = live
        self.relays = relays

    async def load(self) -> None:
        """Follow the zaps of every stored goal (after a restart)."""
        for goal_id, stream_id in (await self.store.read(nq.goal_streams)).items():
            self.intake.follow_goal(goal_id, stream_id)

    async def set_goal(self, stream_id: str, amount_sats: int, title: str) -> dict[str, Any]:
        """Publish a goal and link it from the stream's 30311.

        Raises:
            BroadcastNotFound: no such broadcast.
            ValueError: bad amount or title, no relays (NIP-75 goals name their relays), or
                the broadcast is not public (it would be announced on Nostr).
            SignerUnavailableError: the operator's remote signer cannot sign now.
        """
        await self.streams.get_broadcast(stream_id)
        if not 1 <= amount_sats <= MAX_SATS:
            raise ValueError("amount_sats must be a positive number of sats")
        title = title.strip()
        if not 1 <= len(title) <= MAX_TITLE_CHARS:
            raise ValueError(f"title must be 1..{MAX_TITLE_CHARS} characters")
        if not self.relays:
            raise ValueError("a zap goal needs at least one relay (nostr.relays)")
        if not self.streams.is_public(stream_id):  # a goal would announce it (issue 14 §1)
            raise ValueError("a zap goal is published on Nostr: only for public broadcasts")
        unsigned = build_goal(amount_msats=amount_sats * 1000, title=title, relays=self.relays,
                              activity_addr=self.identity.address(stream_id))
        try:
            event = await self.identity.sign(unsigned)
        except SigningDeferred as exc:
            raise SignerUnavailableError(
                f"the operator's signer cannot sign now: {exc}") from None
        relays = self.relays

        def tx(db: Any) -> None:
            add_to_outbox(db, event, relays, stream_id=stream_id)
            nq.set_goal(db, stream_id, event.id, amount_sats * 1000, title, event.created_at)

        await self.store.write(tx)
        await self.outbox.wake()
        self.intake.follow_goal(event.id, stream_id)
        await self.live.publish_activity(stream_id)
        self.bus.publish(GoalChanged(stream_id=stream_id))
        goal = await self.get(stream_id)
        assert goal is not None
        return goal

    async def get(self, stream_id: str) -> dict[str, Any] | None:
        """``{event_id, title, amount_msats, progress_msats}`` or ``None``."""
        row = await self.store.read(lambda db: nq.get_goal(db, stream_id))
        if row is None:
            return None
        return {"event_id": row.event_id, "title": row.title, "amount_msats": row.amount_msats,
                "progress_msats": row.progress_msats}
