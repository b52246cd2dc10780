"""Chatters' names from their kind 0 profiles (NIP-01 metadata), cached in memory and SQLite.

Authors seen in chat without a known name are batched into one ``profiles`` subscription per
second; the pool has verified every event before :meth:`Profiles.on_profile` sees it.
"""

from __future__ import annotations

import json
import logging

from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.nostr.chat import display_name
from appliance.tasks import BackgroundTasks
from relay_client import NostrEvent, RelayPool
from relay_client.nip19 import encode_npub

logger = logging.getLogger(__name__)

PROFILE_KIND = 0
#: authors per profile REQ (relays cap filter sizes; 500 is accepted by the common ones)
MAX_AUTHORS_PER_REQ = 500


class Profiles:
    """Display names by pubkey."""

    def __init__(self, store: Store, pool: RelayPool, relays: tuple[str, ...],
                 tasks: BackgroundTasks) -> None:
        self.store = store
        self.pool = pool
        self.relays = relays
        self._tasks = tasks
        self._names: dict[str, str] = {}
        self._unknown: set[str] = set()

    def name(self, pubkey: str) -> str | None:
        return self._names.get(pubkey)

    def label(self, pubkey: str) -> str:
        """Kind-0 name when known, else a short npub."""
        name = self._names.get(pubkey)
        if name:
            return name
        npub = encode_npub(pubkey)
        return f"{npub[:12]}…{npub[-6:]}"

    def note_author(self, pubkey: str) -> None:
        """An author was seen; fetch their profile on the next :meth:`flush` if unknown."""
        if pubkey not in self._names:
            self._unknown.add(pubkey)

    async def load(self, pubkeys: set[str]) -> None:
        """Fill the cache from SQLite for ``pubkeys`` not in memory."""
        unknown = pubkeys - self._names.keys()
        if unknown:
            self._names.update(await self.store.read(lambda db: nq.profile_names(db, unknown)))

    def flush(self) -> None:
        """Ask the relays for the profiles of authors noted since the last call."""
        if not self._unknown or not self.relays:
            return
        authors = sorted(self._unknown)[:MAX_AUTHORS_PER_REQ]
        self._unknown.clear()
        self.pool.subscribe("profiles", [{"kinds": [PROFILE_KIND], "authors": authors}],
                            self.on_profile)

    def on_profile(self, event: NostrEvent, relay: str) -> None:
        try:
            meta = json.loads(event.content)
        except (ValueError, RecursionError):
            return
        if not isinstance(meta, dict):
            return
        name = meta.get("display_name") or meta.get("name")
        if not isinstance(name, str) or not display_name(name):
            return
        clean = display_name(name)
        self._names[event.pubkey] = clean
        self._tasks.spawn(self.store.write(lambda db: nq.upsert_profile(
            db, event.pubkey, clean, event.created_at)), "nostr-profile")
