"""Chatters' names from their kind 0 profiles (NIP-01 metadata), cached in memory and SQLite.

Authors seen in chat without a fresh profile are batched into one ``profiles`` subscription
per second; the pool has verified every event (id, signature, filter) before
:meth:`Profiles.on_profile` sees it, and only a newer ``created_at`` replaces a name
(NIP-01: kind 0 is replaceable). The memory cache is bounded (LRU) and names are asked again
after :data:`REFRESH_AFTER`. Avatars are never loaded: pages show initials, so no viewer's
browser is sent to a third-party image host (docs/nostr-compatibility.md).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.nostr.chat import display_name
from appliance.nostr.nip05 import Nip05Error, Nip05Verifier
from appliance.nostr.nip05 import display as nip05_display
from appliance.tasks import BackgroundTasks
from relay_client import NostrEvent, RelayPool
from relay_client.jsonbound import JsonBoundError, decode_bounded
from relay_client.nip19 import encode_npub

logger = logging.getLogger(__name__)

PROFILE_KIND = 0
#: authors per profile REQ (relays cap filter sizes; 500 is accepted by the common ones)
MAX_AUTHORS_PER_REQ = 500
#: kind 0 content larger than this is not parsed (real profiles are < 2 KiB)
MAX_PROFILE_BYTES = 16 * 1024
#: names kept in memory (SQLite keeps them all)
CACHE_SIZE = 5000
#: seconds before a known name is asked for again
REFRESH_AFTER = 3600.0


class ProfileError(ValueError):
    """A kind 0 content is not a usable profile."""


@dataclass(frozen=True, slots=True)
class ProfileMeta:
    """The fields Hearth reads from a kind 0 (display-safe strings, possibly empty)."""

    name: str
    nip05: str = ""


def parse_profile(content: str) -> ProfileMeta:
    """Read a kind 0 ``content`` (NIP-01: stringified JSON ``{name, about, picture, …}``;
    NIP-24 ``display_name`` preferred for showing).

    Raises:
        ProfileError: oversized, not JSON, not an object, or no usable name.
    """
    try:
        meta = decode_bounded(content, MAX_PROFILE_BYTES, "profile")
    except JsonBoundError as exc:
        raise ProfileError(str(exc)) from None
    if not isinstance(meta, dict):
        raise ProfileError("profile content must be a JSON object")
    for key in ("display_name", "displayName", "name"):
        value = meta.get(key)
        if isinstance(value, str) and display_name(value):
            nip05 = meta.get("nip05")
            return ProfileMeta(display_name(value),
                               display_name(nip05) if isinstance(nip05, str) else "")
    raise ProfileError("profile has no usable name")


@dataclass(slots=True)
class _Entry:
    name: str
    created_at: int
    fetched_at: float
    #: the NIP-05 identifier, shown only once verified
    verified: str = ""


class Profiles:
    """Display names by pubkey.

    Args:
        on_name: called with ``(pubkey, name)`` when a name is learned or changes.
        clock: monotonic seconds (injected in tests).
    """

    def __init__(self, store: Store, pool: RelayPool, relays: tuple[str, ...],
                 tasks: BackgroundTasks, *,
                 on_name: Callable[[str, str], None] = lambda pk, name: None,
                 clock: Callable[[], float] = time.monotonic,
                 cache_size: int = CACHE_SIZE,
                 nip05: Nip05Verifier | None = None) -> None:
        self.store = store
        self.pool = pool
        self.relays = relays
        self.on_name = on_name
        self._tasks = tasks
        self._clock = clock
        self._cache_size = cache_size
        self._names: OrderedDict[str, _Entry] = OrderedDict()
        self._unknown: set[str] = set()
        self._nip05 = nip05

    def name(self, pubkey: str) -> str | None:
        """The display name, with its NIP-05 identifier once that verified."""
        entry = self._names.get(pubkey)
        if entry is None:
            return None
        return f"{entry.name} ({entry.verified})" if entry.verified else entry.name

    def label(self, pubkey: str) -> str:
        """Kind-0 name when known, else a short npub."""
        name = self.name(pubkey)
        if name:
            return name
        npub = encode_npub(pubkey)
        return f"{npub[:12]}…{npub[-6:]}"

    def _remember(self, pubkey: str, name: str, created_at: int, fetched_at: float) -> None:
        self._names[pubkey] = _Entry(name, created_at, fetched_at)
        self._names.move_to_end(pubkey)
        while len(self._names) > self._cache_size:
            self._names.popitem(last=False)

    def note_author(self, pubkey: str) -> None:
        """An author was seen; fetch their profile on the next :meth:`flush` if unknown or
        not asked for in :data:`REFRESH_AFTER` seconds."""
        entry = self._names.get(pubkey)
        if entry is None or self._clock() - entry.fetched_at >= REFRESH_AFTER:
            self._unknown.add(pubkey)

    async def load(self, pubkeys: set[str]) -> None:
        """Fill the cache from SQLite for ``pubkeys`` not in memory."""
        unknown = pubkeys - self._names.keys()
        if unknown:
            found = await self.store.read(lambda db: nq.profile_names(db, unknown))
            for pk, name in found.items():
                # created_at unknown here: any relay version replaces it, and it is refreshed.
                self._remember(pk, name, 0, self._clock() - REFRESH_AFTER)

    def flush(self) -> None:
        """Ask the relays for the profiles of authors noted since the last call."""
        if not self._unknown or not self.relays:
            return
        authors = sorted(self._unknown)[:MAX_AUTHORS_PER_REQ]
        self._unknown.difference_update(authors)
        now = self._clock()
        for pk in authors:
            entry = self._names.get(pk)
            if entry is not None:
                entry.fetched_at = now
        self.pool.subscribe("profiles", [{"kinds": [PROFILE_KIND], "authors": authors}],
                            self.on_profile)

    def on_profile(self, event: NostrEvent, relay: str) -> None:
        if event.kind != PROFILE_KIND:
            return
        entry = self._names.get(event.pubkey)
        if entry is not None and event.created_at <= entry.created_at:
            return  # an older version (NIP-01 replaceable: newest wins)
        try:
            meta = parse_profile(event.content)
        except ProfileError:
            return
        changed = entry is None or entry.name != meta.name
        self._remember(event.pubkey, meta.name, event.created_at, self._clock())
        self._tasks.spawn(self.store.write(lambda db: nq.upsert_profile(
            db, event.pubkey, meta.name, event.created_at)), "nostr-profile")
        if changed:
            self.on_name(event.pubkey, meta.name)
        if meta.nip05 and self._nip05 is not None:
            self._tasks.spawn(self._verify(event.pubkey, meta.nip05), "nostr-nip05")

    async def _verify(self, pubkey: str, identifier: str) -> None:
        assert self._nip05 is not None
        if not await self._nip05.verify(identifier, pubkey):
            return
        entry = self._names.get(pubkey)
        if entry is None:
            return
        try:
            entry.verified = nip05_display(identifier)
        except Nip05Error:
            return
        shown = self.name(pubkey)
        if shown:
            self.on_name(pubkey, shown)
