"""Who Hearth is on Nostr: the service key, and the operator (pubkey, optionally a signer).

The service key signs what Hearth says as itself (NIP-42 AUTH, and 30311/1311 when no operator
signer is configured). The operator's key, when imported (``nostr.operator_key_file``), signs
the live events and operator chat so that clients show the operator as the host (NIP-53).
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
from relay_client import PrivateKeySigner, activity_address


class Identity:
    """The appliance's keys. Build with :meth:`load` (blocking file reads go to a thread)."""

    def __init__(self, service: PrivateKeySigner, *, operator_pubkey: str | None = None,
                 operator_signer: PrivateKeySigner | None = None) -> None:
        self.service = service
        self.operator_signer = operator_signer
        self.operator_pubkey = operator_pubkey

    @classmethod
    async def load(cls, config: Config) -> Identity:
        """Load (or create) the service key and the configured operator identity.

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
        return cls(service, operator_pubkey=operator_pubkey, operator_signer=operator_signer)

    @property
    def signer(self) -> PrivateKeySigner:
        """Who signs 30311 and operator chat: the imported operator key, else the service."""
        return self.operator_signer if self.operator_signer is not None else self.service

    @property
    def service_pubkey(self) -> str:
        return self.service.public_key

    @property
    def activity_pubkey(self) -> str:
        return self.signer.public_key

    @property
    def signing_as(self) -> str:
        return "service" if self.activity_pubkey == self.service_pubkey else "operator"

    def address(self, stream_id: str) -> str:
        """NIP-53 coordinate ``30311:<pubkey>:<d>`` of a stream (``d`` = stream id)."""
        return activity_address(self.activity_pubkey, stream_id)

    def operators(self) -> set[str]:
        """Pubkeys whose chat is shown as the operator's."""
        out = {self.service_pubkey, self.activity_pubkey}
        if self.operator_pubkey:
            out.add(self.operator_pubkey)
        return out
