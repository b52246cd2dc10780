"""Who may not chat: the host's local mutes (SQLite) and their NIP-51 mute list (kind 10000)."""

from __future__ import annotations

from appliance.db import Store
from appliance.db import nostr_queries as nq
from relay_client import NostrEvent

MUTE_LIST_KIND = 10000  # NIP-51 mute list (replaceable)


class MuteList:
    """Local mutes plus the newest remote mute list of the operator."""

    def __init__(self, store: Store, operator_pubkey: str | None) -> None:
        self.store = store
        self.operator_pubkey = operator_pubkey
        self.local: set[str] = set()
        self.remote: set[str] = set()
        self._remote_at = 0

    async def load(self) -> None:
        self.local = await self.store.read(nq.list_mutes)

    def is_muted(self, pubkey: str) -> bool:
        return pubkey in self.local or pubkey in self.remote

    async def add(self, pubkey: str) -> None:
        await self.store.write(lambda db: nq.add_mute(db, pubkey))
        self.local.add(pubkey)

    async def remove(self, pubkey: str) -> None:
        await self.store.write(lambda db: nq.remove_mute(db, pubkey))
        self.local.discard(pubkey)

    def on_mute_list(self, event: NostrEvent, relay: str) -> None:
        """NIP-51: the operator's newest kind 10000 replaces the remote set (zap.stream applies
        the host's mute list to chat the same way)."""
        if event.pubkey != self.operator_pubkey or event.created_at <= self._remote_at:
            return
        self._remote_at = event.created_at
        self.remote = {v for v in event.tag_values("p") if len(v) == 64}
