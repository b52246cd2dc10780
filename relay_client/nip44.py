"""NIP-44 version 2 encrypted payloads (the encryption of NIP-46 remote signing).

Written from the NIP-44 text and checked against its official vectors
(tests/relay_client/data/nip44.vectors.json, sha256 269ed0f6…25040):

* conversation key = HKDF-extract(salt="nip44-v2", IKM = unhashed 32-byte x of ECDH(a, B));
* per message: HKDF-expand(conversation key, info = 32-byte random nonce, 76 bytes) →
  ChaCha20 key (32) ‖ ChaCha20 nonce (12) ‖ HMAC key (32);
* plaintext (1..65535 bytes UTF-8) is prefixed with its u16 big-endian length and zero-padded
  to :func:`calc_padded_len`; ciphertext = ChaCha20 (RFC 8439, counter 0);
* MAC = HMAC-SHA256(HMAC key, nonce ‖ ciphertext); payload = base64(0x02 ‖ nonce ‖
  ciphertext ‖ MAC).

Decryption checks, in the spec's order: payload length and version before base64 decoding,
the MAC (constant time) before decrypting, then the padding. Every failure is
:class:`Nip44Error`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

__all__ = [
    "MAX_PLAINTEXT_BYTES",
    "Nip44Error",
    "calc_padded_len",
    "conversation_key",
    "decrypt",
    "encrypt",
    "message_keys",
]

VERSION = 2
MIN_PLAINTEXT_BYTES = 1
MAX_PLAINTEXT_BYTES = 65535
# NIP-44 "Decryption": base64 payload 132..87472 characters, decoded 99..65603 bytes.
_MIN_PAYLOAD_CHARS, _MAX_PAYLOAD_CHARS = 132, 87472
_MIN_DATA_BYTES, _MAX_DATA_BYTES = 99, 65603
_SALT = b"nip44-v2"


class Nip44Error(ValueError):
    """A NIP-44 key, plaintext or payload is invalid (never says which byte of a MAC)."""


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869 §2.3 with SHA-256.
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def conversation_key(secret_key: bytes, public_key_xonly: bytes) -> bytes:
    """The 32-byte key shared by ``secret_key``'s owner and ``public_key_xonly``'s owner.

    Raises:
        Nip44Error: the secret is not a valid scalar or the public key is not on the curve.
    """
    if len(secret_key) != 32 or len(public_key_xonly) != 32:
        raise Nip44Error("keys must be 32 bytes")
    try:
        private = PrivateKey(secret_key)
        point = PublicKey(b"\x02" + public_key_xonly)  # BIP-340 lift_x: even y
        shared_x = point.multiply(private.secret).format(compressed=True)[1:]
    except ValueError:
        raise Nip44Error("invalid key for ECDH") from None
    return hmac.new(_SALT, shared_x, hashlib.sha256).digest()


def message_keys(conv_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """``(chacha_key, chacha_nonce, hmac_key)`` for one message."""
    if len(conv_key) != 32:
        raise Nip44Error("conversation key must be 32 bytes")
    if len(nonce) != 32:
        raise Nip44Error("nonce must be 32 bytes")
    keys = _hkdf_expand(conv_key, nonce, 76)
    return keys[:32], keys[32:44], keys[44:76]


def calc_padded_len(unpadded_len: int) -> int:
    """NIP-44 padding: 32 bytes minimum, then chunks of 1/8 of the next power of two."""
    if unpadded_len < 1:
        raise Nip44Error("expected a positive length")
    if unpadded_len <= 32:
        return 32
    next_power = 1 << (unpadded_len - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((unpadded_len - 1) // chunk + 1)


def _pad(plaintext: str) -> bytes:
    try:
        data = plaintext.encode("utf-8")
    except UnicodeEncodeError:
        raise Nip44Error("plaintext has no UTF-8 form (lone surrogate)") from None
    if not MIN_PLAINTEXT_BYTES <= len(data) <= MAX_PLAINTEXT_BYTES:
        raise Nip44Error(f"plaintext must be {MIN_PLAINTEXT_BYTES}..{MAX_PLAINTEXT_BYTES} "
                         f"bytes, got {len(data)}")
    return len(data).to_bytes(2, "big") + data + bytes(calc_padded_len(len(data)) - len(data))


def _unpad(padded: bytes) -> str:
    length = int.from_bytes(padded[:2], "big")
    if (length == 0 or len(padded) != 2 + calc_padded_len(length)
            or len(padded) < 2 + length):
        raise Nip44Error("invalid padding")
    try:
        return padded[2:2 + length].decode("utf-8")
    except UnicodeDecodeError:
        raise Nip44Error("plaintext is not UTF-8") from None


def _chacha20(key: bytes, nonce12: bytes, data: bytes) -> bytes:
    # cryptography's ChaCha20 takes a 16-byte nonce: 4-byte little-endian counter ‖ nonce.
    cipher = Cipher(algorithms.ChaCha20(key, b"\x00\x00\x00\x00" + nonce12), mode=None)
    return cipher.encryptor().update(data)


def encrypt(plaintext: str, conv_key: bytes, nonce: bytes | None = None) -> str:
    """Encrypt to a base64 payload. ``nonce`` is for test vectors only (default: 32 random
    bytes from the OS CSPRNG; reusing a nonce breaks confidentiality).

    Raises:
        Nip44Error: empty or oversized plaintext, bad key/nonce length.
    """
    nonce = os.urandom(32) if nonce is None else nonce
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    ciphertext = _chacha20(chacha_key, chacha_nonce, _pad(plaintext))
    mac = hmac.new(hmac_key, nonce + ciphertext, hashlib.sha256).digest()
    return base64.b64encode(bytes([VERSION]) + nonce + ciphertext + mac).decode("ascii")


def decrypt(payload: str, conv_key: bytes) -> str:
    """Decrypt a base64 payload.

    Raises:
        Nip44Error: unknown version, bad length or base64, MAC mismatch, bad padding.
    """
    if not isinstance(payload, str):
        raise Nip44Error("payload must be a string")
    if not payload or payload[0] == "#":
        raise Nip44Error("unknown encryption version")
    if not _MIN_PAYLOAD_CHARS <= len(payload) <= _MAX_PAYLOAD_CHARS:
        raise Nip44Error(f"invalid payload size {len(payload)}")
    try:
        data = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Nip44Error("invalid base64") from None
    if not _MIN_DATA_BYTES <= len(data) <= _MAX_DATA_BYTES:
        raise Nip44Error(f"invalid data size {len(data)}")
    if data[0] != VERSION:
        raise Nip44Error(f"unknown encryption version {data[0]}")
    nonce, ciphertext, mac = data[1:33], data[33:-32], data[-32:]
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    expected = hmac.new(hmac_key, nonce + ciphertext, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise Nip44Error("invalid MAC")
    return _unpad(_chacha20(chacha_key, chacha_nonce, ciphertext))
