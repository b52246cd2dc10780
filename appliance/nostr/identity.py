"""Who Hearth is on Nostr: the service key, and the operator (pubkey, and how to sign as them).

The service key signs what Hearth says as itself (its kind 0/10002/31990, NIP-42 AUTH, and
30311/1311 when no operator signer is available). The operator signs live events and operator
chat so that clients show the operator as the host (NIP-53): through a NIP-46 remote signer
(:mod:`appliance.nostr.remote`, the secret never touches the box) or, as before, an imported
key file (``nostr.operator_key_file``).
"""

from __future__ import annotations

import asyncio

from appliance.config import Config, ConfigError
from appliance.nostr.keys import (
    NostrKeyError,
    load_operator_key,
    load_or_create_service_key,
    parse_pubkey,
)
from appliance.nostr.remote import RemoteSigner
from relay_client import NostrEvent, PrivateKeySigner, UnsignedEvent, activity_address
from relay_client.nip46 import SignerRefused, SignerUnavailable


class SigningDeferred(Exception):
    """The operator's remote signer cannot sign now; ``str(exc)`` says why (for the operator).
    The caller keeps the work and retries (nothing is signed by another key unless
    ``nostr.signer_fallback`` is on)."""


class Identity:
    """The appliance's keys. Build with :meth:`load` (blocking file reads go to a thread)."""

    def __init__(self, service: PrivateKeySigner, *, operator_pubkey: str | None = None,
                 operator_signer: PrivateKeySigner | None = None,
                 remote: RemoteSigner | None = None, fallback: bool = False) -> None:
        self.service = service
        self.operator_signer = operator_signer
        self.configured_operator = operator_pubkey
        self.remote = remote
        self.fallback = fallback
        #: why the last remote signing failed (``None`` after a success)
        self.remote_error: str | None = None

    @classmethod
    async def load(cls, config: Config) -> Identity:
        """Load (or create) the service key, the operator key file and a saved NIP-46 pairing.

        Raises:
            ConfigError: the operator key file is unreadable, malformed, or does not belong
                to ``nostr.operator_pubkey``.
        """
        nostr = config.nostr
        service = await asyncio.to_thread(load_or_create_service_key, config.data_path)
        operator_pubkey = parse_pubkey(nostr.operator_pubkey) if nostr.operator_pubkey else None
        operator_signer: PrivateKeySigner | None = None
        if nostr.operator_key_file:
            # A relative path is relative to the data dir.
            key_path = config.data_path / nostr.operator_key_file
            try:
                operator_signer = await asyncio.to_thread(load_operator_key, key_path)
            except NostrKeyError as exc:
                raise ConfigError("nostr.operator_key_file", str(exc)) from None
            if operator_pubkey is None:
                operator_pubkey = operator_signer.public_key
            elif operator_pubkey != operator_signer.public_key:
                raise ConfigError("nostr.operator_key_file",
                                  "the key does not belong to nostr.operator_pubkey")
        remote = RemoteSigner(config.data_path, timeout=nostr.signer_timeout)
        await remote.load()
        return cls(service, operator_pubkey=operator_pubkey, operator_signer=operator_signer,
                   remote=remote, fallback=nostr.signer_fallback)

    @property
    def remote_pubkey(self) -> str | None:
        """The user pubkey of the paired remote signer, if any."""
        return self.remote.user_pubkey if self.remote is not None else None

    @property
    def operator_pubkey(self) -> str | None:
        return self.configured_operator or self.remote_pubkey

    @property
    def signer(self) -> PrivateKeySigner:
        """The *local* key that signs when no remote signer is paired."""
        return self.operator_signer if self.operator_signer is not None else self.service

    @property
    def service_pubkey(self) -> str:
        return self.service.public_key

    @property
    def activity_pubkey(self) -> str:
        """Whose 30311 the streams are (the ``pubkey`` of their coordinates)."""
        return self.remote_pubkey or self.signer.public_key

    @property
    def signing_as(self) -> str:
        if self.remote_pubkey:
            return "remote"
        return "service" if self.activity_pubkey == self.service_pubkey else "operator"

    def address(self, stream_id: str) -> str:
        """NIP-53 coordinate ``30311:<pubkey>:<d>`` of a stream (``d`` = stream id)."""
        return activity_address(self.activity_pubkey, stream_id)

    def activity_pubkeys(self) -> tuple[str, ...]:
        """Pubkeys whose 30311 coordinates are ours (the service one too when it may stand in
        for an unreachable remote signer)."""
        keys = [self.activity_pubkey]
        if self.remote_pubkey and self.fallback:
            keys.append(self.service_pubkey)
        return tuple(dict.fromkeys(keys))

    def operators(self) -> set[str]:
        """Pubkeys whose chat is shown as the operator's."""
        out = {self.service_pubkey, self.activity_pubkey}
        if self.operator_pubkey:
            out.add(self.operator_pubkey)
        return out

    async def sign(self, unsigned: UnsignedEvent) -> NostrEvent:
        """Sign as the operator: the remote signer when paired, else the local key.

        Raises:
            SigningDeferred: the remote signer is unreachable or refused, and
                ``nostr.signer_fallback`` is off.
        """
        remote = self.remote.signer if self.remote is not None else None
        if remote is None:
            return self.signer.sign_event(unsigned)
        try:
            event = await remote.sign_event(unsigned)
        except (SignerUnavailable, SignerRefused) as exc:
            self.remote_error = str(exc)
            if self.fallback:
                return self.service.sign_event(unsigned)
            raise SigningDeferred(str(exc)) from None
        self.remote_error = None
        return event

    def can_sign_as_operator(self) -> bool:
        return self.operator_signer is not None or self.remote_pubkey is not None
