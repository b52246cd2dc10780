"""BIP-340 Schnorr primitives over secp256k1 (coincurve wraps libsecp256k1).

The lowest layer of the library: :mod:`relay_client.event` uses :func:`verify_signature` to
check events, :mod:`relay_client.signing` uses :func:`sign32` to make them. Keeping the
crypto here (and not in ``signing``) is what keeps ``event`` → ``signing`` a one-way import.
"""

from __future__ import annotations

import os

from coincurve import PrivateKey, PublicKeyXOnly

__all__ = ["verify_signature", "xonly_public_key"]


def xonly_public_key(key: PrivateKey) -> str:
    """The 64-hex x-only public key of ``key`` (NIP-01 ``pubkey``)."""
    return key.public_key_xonly.format().hex()


def sign32(key: PrivateKey, msg32: bytes, aux_rand: bytes | None = None) -> bytes:
    """BIP-340 sign 32 bytes; ``aux_rand`` ``None`` draws fresh OS randomness (BIP-340
    "Default Signing" recommends it)."""
    return bytes(key.sign_schnorr(msg32, os.urandom(32) if aux_rand is None else aux_rand))


def verify_signature(pubkey_hex: str, msg32: bytes, sig_hex: str) -> bool:
    """BIP-340 verify; ``False`` for any invalid input (bad hex, off-curve key, …).

    Never raises: a forged or garbled signature is an ordinary ``False``.
    """
    if len(msg32) != 32 or len(pubkey_hex) != 64 or len(sig_hex) != 128:
        return False
    try:
        pub = PublicKeyXOnly(bytes.fromhex(pubkey_hex))
        sig = bytes.fromhex(sig_hex)
    except ValueError:  # not hex, or x not on the curve / >= field size (BIP-340 lift_x)
        return False
    return bool(pub.verify(sig, msg32))
