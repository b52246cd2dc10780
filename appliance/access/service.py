"""Grants and channel passwords: who may watch a private channel or broadcast.

:class:`AccessService` owns the grant-signing secret (256 random bits, made on first start
and kept in the database, which is 0600 in a 0700 data dir), each channel's grant epoch and
its password digest, in memory (checks never touch SQLite) and in SQLite (through the Store).
Changes commit first, then take effect in memory, so a revocation holds across restarts.

Contract for other features (e.g. an owner link):

* ``await access.start()`` once; then ``mint(channel_id, broadcast_id, ttl, purpose=...)``
  returns ``(token, expires)`` and ``check(token, channel_id, broadcast_id, purpose=...)``
  returns the :class:`~appliance.access.tokens.Grant` or None. A token of one purpose is never
  accepted for another; ``revoke_all(channel_id)`` ends every token of the channel, whatever
  its purpose.
* Time comes from the injected ``clock`` (Unix seconds), so expiry is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from appliance.access.passwords import check_new_password, hash_password, password_matches
from appliance.access.tokens import Grant, TokenError, new_secret, parse_token, sign_token
from appliance.db import Store
from appliance.db import access_queries as aq

WATCH = "watch"
"""Purpose of viewer grants."""
SECRET_NAME = "grants"
MAX_TTL = 366 * 24 * 3600.0
"""Longest a grant may last (a year and a day)."""
# A digest the comparison runs against when a channel has no password, so a refusal takes
# as long whether or not one is set.
_DUMMY_DIGEST = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="


class AccessService:
    """Grant tokens and channel passwords (see the module docstring)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._secret = b""
        self._epochs: dict[str, int] = {}
        self._passwords: dict[str, str] = {}

    async def start(self) -> None:
        fresh = new_secret().hex()
        secret_hex = await self.store.write(lambda db: aq.ensure_secret(db, SECRET_NAME, fresh))
        self._secret = bytes.fromhex(secret_hex)
        rows = await self.store.read(aq.channel_access)
        self._epochs = {cid: epoch for cid, (epoch, _) in rows.items()}
        self._passwords = {cid: digest for cid, (_, digest) in rows.items() if digest}

    # ---- grants ------------------------------------------------------------------------------

    def mint(self, channel_id: str, broadcast_id: str | None, ttl: float, *,
             purpose: str = WATCH) -> tuple[str, int]:
        """A token for the channel (or one of its broadcasts) valid ``ttl`` seconds."""
        if not 0 < ttl <= MAX_TTL:
            raise ValueError(f"a grant lasts more than 0 s and at most {MAX_TTL:.0f} s")
        expires = int(self.clock() + ttl)
        grant = Grant(purpose=purpose, channel_id=channel_id, broadcast_id=broadcast_id,
                      expires=expires, epoch=self._epochs.get(channel_id, 0))
        return sign_token(self._secret, grant), expires

    def check(self, token: str, channel_id: str, broadcast_id: str | None, *,
              purpose: str = WATCH) -> Grant | None:
        """The grant if ``token`` is genuine, unexpired, not revoked and covers the channel
        (and ``broadcast_id``, when the token names one); else None."""
        try:
            grant = parse_token(self._secret, token, now=self.clock(), purpose=purpose)
        except TokenError:
            return None
        if grant.channel_id != channel_id or grant.epoch != self._epochs.get(channel_id, 0):
            return None
        if grant.broadcast_id is not None and grant.broadcast_id != broadcast_id:
            return None
        return grant

    def inspect(self, token: str, *, purpose: str = WATCH) -> Grant | None:
        """The grant if ``token`` is genuine, unexpired and not revoked, whatever its scope."""
        try:
            grant = parse_token(self._secret, token, now=self.clock(), purpose=purpose)
        except TokenError:
            return None
        if grant.epoch != self._epochs.get(grant.channel_id, 0):
            return None
        return grant

    async def revoke_all(self, channel_id: str) -> int:
        """End every grant (and password session) of the channel; returns the new epoch."""
        epoch = await self.store.write(lambda db: aq.bump_grant_epoch(db, channel_id))
        self._epochs[channel_id] = epoch
        return epoch

    # ---- passwords ---------------------------------------------------------------------------

    def has_password(self, channel_id: str) -> bool:
        return channel_id in self._passwords

    async def set_password(self, channel_id: str, password: str | None) -> None:
        """Set (or with None remove) the channel's password. Raises PasswordError."""
        digest = None
        if password is not None:
            check_new_password(password)
            digest = await asyncio.to_thread(hash_password, password)

        def tx(db: Any) -> None:
            aq.set_password_hash(db, channel_id, digest)

        await self.store.write(tx)
        if digest is None:
            self._passwords.pop(channel_id, None)
        else:
            self._passwords[channel_id] = digest

    async def password_matches(self, channel_id: str, password: str) -> bool:
        """Constant-time check, off the loop (the caller limits guesses per address)."""
        stored = self._passwords.get(channel_id)
        ok = await asyncio.to_thread(password_matches, password, stored or _DUMMY_DIGEST)
        return ok and stored is not None
