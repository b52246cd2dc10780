"""NIP-19 bech32 entities: npub/nsec/note and TLV nprofile/nevent/naddr.

Bech32 (not bech32m) per BIP-173. NIP-19 TLV strings routinely exceed BIP-173's 90-char
limit, so we accept up to :data:`MAX_BECH32_LENGTH` (the limit nostr clients use in practice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_BECH32_LENGTH",
    "Nip19Error",
    "NAddr",
    "NEvent",
    "NProfile",
    "bech32_decode",
    "bech32_encode",
    "decode",
    "decode_note",
    "decode_npub",
    "decode_nsec",
    "encode_naddr",
    "encode_nevent",
    "encode_note",
    "encode_nprofile",
    "encode_npub",
    "encode_nsec",
]

MAX_BECH32_LENGTH = 5000

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(_CHARSET)}
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)

# NIP-19 TLV types.
_TLV_SPECIAL = 0
_TLV_RELAY = 1
_TLV_AUTHOR = 2
_TLV_KIND = 3


class Nip19Error(ValueError):
    """A bech32 / NIP-19 string is malformed or has the wrong prefix."""


# -- BIP-173 bech32 --------------------------------------------------------------------


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        # BIP-173: at most 4 bits of zero padding are allowed when decoding.
        raise Nip19Error("invalid padding in bech32 data")
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    """Encode bytes with human-readable part ``hrp`` (lowercase output)."""
    words = _convertbits(data, 8, 5, True)
    values = _hrp_expand(hrp) + words
    polymod = _polymod(values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in words + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Decode a bech32 string into ``(hrp, data bytes)``.

    Raises:
        Nip19Error: mixed case, bad characters, bad checksum, bad padding, too long.
    """
    if len(text) > MAX_BECH32_LENGTH:
        raise Nip19Error(f"bech32 string is {len(text)} characters, limit is {MAX_BECH32_LENGTH}")
    if text.lower() != text and text.upper() != text:
        raise Nip19Error("bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise Nip19Error("bech32 string has no human-readable part")
    if pos + 7 > len(text):
        raise Nip19Error("bech32 string is too short for a checksum")
    hrp = text[:pos]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Nip19Error("bech32 human-readable part has invalid characters")
    try:
        values = [_CHARSET_REV[c] for c in text[pos + 1 :]]
    except KeyError as exc:
        raise Nip19Error(f"invalid bech32 character {exc.args[0]!r}") from exc
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise Nip19Error("bech32 checksum is invalid")
    return hrp, bytes(_convertbits(values[:-6], 5, 8, False))


# -- bare keys and ids -------------------------------------------------------------------


def _hex32(name: str, value: str) -> bytes:
    if len(value) != 64:
        raise Nip19Error(f"{name} must be 64 hex characters, got {len(value)}")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise Nip19Error(f"{name} must be hex") from exc


def _encode_bare(hrp: str, value_hex: str) -> str:
    return bech32_encode(hrp, _hex32(hrp, value_hex))


def _decode_bare(expected: str, text: str) -> str:
    hrp, data = bech32_decode(text)
    if hrp != expected:
        raise Nip19Error(f"expected a {expected} string, got {hrp}")
    if len(data) != 32:
        raise Nip19Error(f"{expected} must hold 32 bytes, got {len(data)}")
    return data.hex()


def encode_npub(pubkey_hex: str) -> str:
    return _encode_bare("npub", pubkey_hex)


def encode_nsec(secret_hex: str) -> str:
    return _encode_bare("nsec", secret_hex)


def encode_note(event_id_hex: str) -> str:
    return _encode_bare("note", event_id_hex)


def decode_npub(text: str) -> str:
    """``npub1…`` → lowercase hex public key."""
    return _decode_bare("npub", text)


def decode_nsec(text: str) -> str:
    """``nsec1…`` → lowercase hex secret key."""
    return _decode_bare("nsec", text)


def decode_note(text: str) -> str:
    """``note1…`` → lowercase hex event id."""
    return _decode_bare("note", text)


# -- TLV entities ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NProfile:
    pubkey: str
    relays: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NEvent:
    event_id: str
    relays: tuple[str, ...] = ()
    author: str | None = None
    kind: int | None = None


@dataclass(frozen=True, slots=True)
class NAddr:
    """An addressable-event coordinate ``kind:author:identifier`` (NIP-19 ``naddr``)."""

    identifier: str
    author: str
    kind: int
    relays: tuple[str, ...] = field(default=())


def _tlv(t: int, value: bytes) -> bytes:
    if len(value) > 255:
        raise Nip19Error(f"TLV value for type {t} is {len(value)} bytes, limit is 255")
    return bytes((t, len(value))) + value


def _parse_tlv(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise Nip19Error("TLV record is truncated")
        t, length = data[i], data[i + 1]
        value = data[i + 2 : i + 2 + length]
        if len(value) != length:
            raise Nip19Error(f"TLV value for type {t} is truncated")
        out.append((t, value))
        i += 2 + length
    return out


def _relay_bytes(relays: tuple[str, ...] | list[str]) -> bytes:
    return b"".join(_tlv(_TLV_RELAY, r.encode("utf-8")) for r in relays)


def _decode_relay(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Nip19Error("relay URL in TLV is not valid UTF-8") from exc


def _kind_bytes(kind: int) -> bytes:
    if not 0 <= kind <= 0xFFFFFFFF:
        raise Nip19Error(f"kind must fit in 32 bits, got {kind}")
    return _tlv(_TLV_KIND, kind.to_bytes(4, "big"))


def encode_nprofile(pubkey_hex: str, relays: tuple[str, ...] | list[str] = ()) -> str:
    data = _tlv(_TLV_SPECIAL, _hex32("pubkey", pubkey_hex)) + _relay_bytes(relays)
    return bech32_encode("nprofile", data)


def encode_nevent(
    event_id_hex: str,
    relays: tuple[str, ...] | list[str] = (),
    author: str | None = None,
    kind: int | None = None,
) -> str:
    data = _tlv(_TLV_SPECIAL, _hex32("event id", event_id_hex)) + _relay_bytes(relays)
    if author is not None:
        data += _tlv(_TLV_AUTHOR, _hex32("author", author))
    if kind is not None:
        data += _kind_bytes(kind)
    return bech32_encode("nevent", data)


def encode_naddr(
    identifier: str, author: str, kind: int, relays: tuple[str, ...] | list[str] = ()
) -> str:
    """``naddr`` for ``kind:author:identifier`` (NIP-53: how a live activity is shared)."""
    data = (
        _tlv(_TLV_SPECIAL, identifier.encode("utf-8"))
        + _relay_bytes(relays)
        + _tlv(_TLV_AUTHOR, _hex32("author", author))
        + _kind_bytes(kind)
    )
    return bech32_encode("naddr", data)


def _one32(name: str, value: bytes) -> str:
    if len(value) != 32:
        raise Nip19Error(f"{name} must be 32 bytes, got {len(value)}")
    return value.hex()


def _decode_tlv_entity(hrp: str, data: bytes) -> NProfile | NEvent | NAddr:
    special: bytes | None = None
    relays: list[str] = []
    author: str | None = None
    kind: int | None = None
    # NIP-19: unknown TLV types are ignored; the first special/author/kind wins.
    for t, value in _parse_tlv(data):
        if t == _TLV_SPECIAL and special is None:
            special = value
        elif t == _TLV_RELAY:
            relays.append(_decode_relay(value))
        elif t == _TLV_AUTHOR and author is None:
            author = _one32("author", value)
        elif t == _TLV_KIND and kind is None:
            if len(value) != 4:
                raise Nip19Error(f"kind must be 4 bytes, got {len(value)}")
            kind = int.from_bytes(value, "big")
    if special is None:
        raise Nip19Error(f"{hrp} has no special (type 0) TLV record")
    return _tlv_entity(hrp, special, tuple(relays), author, kind)


def _tlv_entity(
    hrp: str, special: bytes, relays: tuple[str, ...], author: str | None, kind: int | None
) -> NProfile | NEvent | NAddr:
    if hrp == "nprofile":
        return NProfile(pubkey=_one32("pubkey", special), relays=relays)
    if hrp == "nevent":
        return NEvent(
            event_id=_one32("event id", special), relays=relays, author=author, kind=kind
        )
    if author is None:
        raise Nip19Error("naddr has no author (type 2) TLV record")
    if kind is None:
        raise Nip19Error("naddr has no kind (type 3) TLV record")
    try:
        identifier = special.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Nip19Error("naddr identifier is not valid UTF-8") from exc
    return NAddr(identifier=identifier, author=author, kind=kind, relays=relays)


def decode(text: str) -> tuple[str, str | NProfile | NEvent | NAddr]:
    """Decode any supported NIP-19 string into ``(prefix, value)``.

    ``npub``/``nsec``/``note`` values are hex strings; TLV prefixes give dataclasses.
    A leading ``nostr:`` (NIP-21) is accepted.

    Raises:
        Nip19Error: malformed, or an unsupported prefix.
    """
    if text.startswith("nostr:"):
        text = text[len("nostr:") :]
    hrp, data = bech32_decode(text)
    if hrp in ("npub", "nsec", "note"):
        if len(data) != 32:
            raise Nip19Error(f"{hrp} must hold 32 bytes, got {len(data)}")
        return hrp, data.hex()
    if hrp in ("nprofile", "nevent", "naddr"):
        return hrp, _decode_tlv_entity(hrp, data)
    raise Nip19Error(f"unsupported NIP-19 prefix {hrp!r}")
