"""BIP-340 Schnorr signatures over secp256k1, behind a small ``Signer`` protocol.

NIP-01: ``sig`` is a BIP-340 signature of the 32-byte event id by the x-only ``pubkey``.
The crypto is coincurve (its wheels bundle libsecp256k1 and expose
``secp256k1_schnorrsig_sign32``/``verify``) behind :mod:`relay_client.schnorr`; nothing here
is hand-rolled. There is one way to sign an event: ``signer.sign_event(unsigned)``, with a
:class:`Signer` (local key) or an :class:`AsyncSigner` (e.g. a NIP-46 bunker).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable
from typing import Protocol, runtime_checkable

from coincurve import PrivateKey

from relay_client.event import NostrEvent, UnsignedEvent
from relay_client.nip19 import Nip19Error, decode_nsec
from relay_client.schnorr import sign32, verify_signature, xonly_public_key

logger = logging.getLogger(__name__)

__all__ = [
    "AsyncSigner",
    "PrivateKeySigner",
    "Signer",
    "SigningError",
    "generate_private_key",
    "verify_signature",  # re-exported from relay_client.schnorr
]

_HEX = frozenset("0123456789abcdef")


class SigningError(ValueError):
    """A key or signature input is malformed (not a verification failure)."""


def _is_lower_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value)


@runtime_checkable
class Signer(Protocol):
    """Something that signs Nostr events synchronously (a local key).

    ``public_key`` is the 64-char lowercase hex x-only key that ends up in ``pubkey``.
    """

    @property
    def public_key(self) -> str: ...

    def sign_event(self, unsigned: UnsignedEvent) -> NostrEvent:
        """Return ``unsigned`` completed with ``pubkey``, ``id`` and ``sig``."""
        ...


class AsyncSigner(Protocol):
    """A signer that needs I/O (e.g. a NIP-46 remote bunker); the pool accepts both."""

    @property
    def public_key(self) -> str: ...

    def sign_event(self, unsigned: UnsignedEvent) -> Awaitable[NostrEvent]: ...


class PrivateKeySigner:
    """The one real ``Signer``: a secp256k1 secret key held in memory.

    ``repr()`` never shows the secret. Use :attr:`secret_hex` to persist it (0600).
    """

    __slots__ = ("_key", "_public_key")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise SigningError(f"secret key must be 32 bytes, got {len(secret)}")
        try:
            self._key = PrivateKey(secret)
        except ValueError as exc:  # zero or >= curve order
            raise SigningError("secret key is not a valid secp256k1 scalar") from exc
        self._public_key = xonly_public_key(self._key)

    @classmethod
    def generate(cls) -> PrivateKeySigner:
        """A fresh key from the OS CSPRNG."""
        while True:
            try:
                return cls(os.urandom(32))
            except SigningError:  # probability ~2^-128; retry
                continue

    @classmethod
    def from_secret(cls, text: str) -> PrivateKeySigner:
        """Parse a secret given as 64 hex chars or as a NIP-19 ``nsec1…`` string.

        Raises:
            SigningError: the text is neither.
        """
        text = text.strip()
        if text.startswith("nsec1"):
            try:
                return cls(bytes.fromhex(decode_nsec(text)))
            except Nip19Error as exc:
                raise SigningError(f"invalid nsec: {exc}") from exc
        if not _is_lower_hex(text.lower(), 64):
            raise SigningError("secret key must be 64 hex characters or an nsec1 string")
        return cls(bytes.fromhex(text))

    @property
    def public_key(self) -> str:
        return self._public_key

    @property
    def secret_hex(self) -> str:
        return self._key.secret.hex()

    def sign_digest(self, digest: bytes, aux_rand: bytes | None = None) -> bytes:
        """BIP-340 sign a 32-byte message (for Nostr: the event id).

        Args:
            digest: exactly 32 bytes.
            aux_rand: 32 bytes of auxiliary randomness; ``None`` draws fresh
                randomness from the OS (BIP-340 "Default Signing" recommends it).
        """
        if len(digest) != 32:
            raise SigningError(f"message must be 32 bytes, got {len(digest)}")
        if aux_rand is not None and len(aux_rand) != 32:
            raise SigningError(f"aux_rand must be 32 bytes, got {len(aux_rand)}")
        return sign32(self._key, digest, aux_rand)

    def sign_event(self, unsigned: UnsignedEvent) -> NostrEvent:
        return unsigned.finalize(self._public_key, self.sign_digest)

    def __repr__(self) -> str:
        return f"PrivateKeySigner(public_key={self._public_key!r})"


def generate_private_key() -> PrivateKeySigner:
    """Shorthand for :meth:`PrivateKeySigner.generate`."""
    return PrivateKeySigner.generate()
