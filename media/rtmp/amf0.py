"""AMF0 encoder/decoder (Adobe "Action Message Format -- AMF 0", December 2007).

Only the types RTMP command and data messages use are supported. Decoding is hostile-input
safe: nesting is limited to :data:`MAX_DEPTH`, nothing is pre-allocated from a peer-declared
count (an ECMA array claiming 2^32-1 entries costs nothing until entries actually arrive),
and every length is checked against the bytes really present, so total decoded size is
bounded by the message size.

Python mapping:

=====================  ===========================================
AMF0                   Python
=====================  ===========================================
number (0x00)          ``float`` (``int`` accepted when encoding)
boolean (0x01)         ``bool``
string / long string   ``str``
object (0x03)          ``dict[str, AmfValue]``
null (0x05)            ``None``
undefined (0x06)       :data:`UNDEFINED`
ECMA array (0x08)      :class:`EcmaArray` (a ``dict`` subclass)
strict array (0x0A)    ``list``
date (0x0B)            :class:`AmfDate`
XML document (0x0F)    ``str`` (decoded only)
=====================  ===========================================
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import TypeAlias

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_DEPTH",
    "UNDEFINED",
    "Amf0DecodeError",
    "AmfDate",
    "AmfUndefined",
    "AmfValue",
    "EcmaArray",
    "decode",
    "decode_one",
    "encode",
    "encode_values",
]

# AMF0 §2.1 type markers.
NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
MOVIECLIP = 0x04
NULL = 0x05
UNDEFINED_MARKER = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
RECORDSET = 0x0E
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10
AVMPLUS_OBJECT = 0x11  # AMF0 §3.1: switch to AMF3 — we only speak AMF0.

# Maximum nesting of objects/arrays. Real clients nest at most 2-3 levels (connect's command
# object, onMetaData); deeper input is hostile (docs/threat-model.md §rtmp: "nested objects 10k
# deep").
MAX_DEPTH = 32

_UNSUPPORTED_NAMES = {
    MOVIECLIP: "movieclip",
    REFERENCE: "reference",
    UNSUPPORTED: "unsupported",
    RECORDSET: "recordset",
    TYPED_OBJECT: "typed object",
}


class Amf0DecodeError(RemoteProtocolError):
    """Malformed or unsupported AMF0 data."""


class AmfUndefined(enum.Enum):
    """The AMF0 ``undefined`` value (distinct from ``null``/``None``)."""

    UNDEFINED = "undefined"

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = AmfUndefined.UNDEFINED


@dataclass(frozen=True, slots=True)
class AmfDate:
    """AMF0 §2.13 date: milliseconds since the Unix epoch (UTC) plus a reserved timezone."""

    milliseconds: float
    timezone: int = 0


class EcmaArray(dict[str, "AmfValue"]):
    """An AMF0 ECMA array (associative array); a ``dict`` that encodes as marker 0x08."""


AmfValue: TypeAlias = (
    float | bool | str | AmfUndefined | AmfDate | dict[str, "AmfValue"] | list["AmfValue"] | None
)

_NUMBER = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE_TZ = struct.Struct(">h")


# --------------------------------------------------------------------------- encoding


def _encode_str_body(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 0xFFFF:
        raise LocalProtocolError(f"AMF0 key of {len(data)} bytes exceeds 65535")
    return _U16.pack(len(data)) + data


def _encode_string(out: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    if len(data) <= 0xFFFF:
        out.append(STRING)
        out += _U16.pack(len(data))
    else:
        out.append(LONG_STRING)
        out += _U32.pack(len(data))
    out += data


def _encode_mapping(out: bytearray, value: dict[object, object], depth: int) -> None:
    if isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        out += _U32.pack(len(value))
    else:
        out.append(OBJECT)
    for key, item in value.items():
        if not isinstance(key, str):
            raise LocalProtocolError(f"AMF0 object keys must be str, not {type(key)!r}")
        out += _encode_str_body(key)
        _encode_into(out, item, depth + 1)
    out += b"\x00\x00" + bytes((OBJECT_END,))


def _encode_into(out: bytearray, value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise LocalProtocolError(f"AMF0 value nested deeper than {MAX_DEPTH}")
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _NUMBER.pack(float(value))
    elif isinstance(value, str):
        _encode_string(out, value)
    elif isinstance(value, AmfDate):
        out.append(DATE)
        out += _NUMBER.pack(value.milliseconds)
        out += _DATE_TZ.pack(value.timezone)
    elif isinstance(value, dict):
        _encode_mapping(out, value, depth)
    elif isinstance(value, list | tuple):
        out.append(STRICT_ARRAY)
        out += _U32.pack(len(value))
        for item in value:
            _encode_into(out, item, depth + 1)
    else:
        raise LocalProtocolError(f"cannot encode {type(value).__name__} as AMF0")


def encode(value: object) -> bytes:
    """Encode one value as AMF0.

    Raises:
        LocalProtocolError: for types with no AMF0 mapping or nesting beyond MAX_DEPTH.
    """
    out = bytearray()
    _encode_into(out, value, 1)
    return bytes(out)


def encode_values(*values: object) -> bytes:
    """Encode a sequence of values back to back (the body of a command/data message)."""
    out = bytearray()
    for value in values:
        _encode_into(out, value, 1)
    return bytes(out)


# --------------------------------------------------------------------------- decoding


class _Decoder:
    __slots__ = ("_data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self._data = data
        self.pos = pos

    def _take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self._data):
            raise Amf0DecodeError(
                f"AMF0 {what} truncated: need {n} bytes at offset {self.pos}, "
                f"have {len(self._data) - self.pos}"
            )
        chunk = self._data[self.pos : end]
        self.pos = end
        return chunk

    def _utf8(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Amf0DecodeError(f"AMF0 {what} is not valid UTF-8") from exc

    def _short_string(self, what: str) -> str:
        (length,) = _U16.unpack(self._take(2, what))
        return self._utf8(self._take(length, what), what)

    def _properties(self, target: dict[str, AmfValue], depth: int) -> None:
        # AMF0 §2.5: (UTF-8 key, value)* then an empty key followed by object-end (0x09).
        while True:
            key = self._short_string("object key")
            if key == "" and self.pos < len(self._data) and self._data[self.pos] == OBJECT_END:
                self.pos += 1
                return
            target[key] = self.value(depth + 1)

    def value(self, depth: int) -> AmfValue:
        if depth > MAX_DEPTH:
            raise Amf0DecodeError(f"AMF0 nesting deeper than {MAX_DEPTH}")
        marker = self._take(1, "type marker")[0]
        if marker == NUMBER:
            (number,) = _NUMBER.unpack(self._take(8, "number"))
            return float(number)
        if marker == BOOLEAN:
            return self._take(1, "boolean")[0] != 0
        if marker == STRING:
            return self._short_string("string")
        if marker == NULL:
            return None
        if marker == UNDEFINED_MARKER:
            return UNDEFINED
        if marker == DATE:
            (ms,) = _NUMBER.unpack(self._take(8, "date"))
            (tz,) = _DATE_TZ.unpack(self._take(2, "date timezone"))
            return AmfDate(float(ms), tz)
        if marker in (LONG_STRING, XML_DOCUMENT):
            (length,) = _U32.unpack(self._take(4, "long string length"))
            return self._utf8(self._take(length, "long string"), "long string")
        return self._container(marker, depth)

    def _container(self, marker: int, depth: int) -> AmfValue:
        if marker == OBJECT:
            obj: dict[str, AmfValue] = {}
            self._properties(obj, depth)
            return obj
        if marker == ECMA_ARRAY:
            # AMF0 §2.10: the associative count is advisory; entries are terminated by
            # object-end like an object. Never pre-allocate from the count.
            self._take(4, "ECMA array count")
            arr = EcmaArray()
            self._properties(arr, depth)
            return arr
        if marker == STRICT_ARRAY:
            (count,) = _U32.unpack(self._take(4, "strict array count"))
            items: list[AmfValue] = []
            for _ in range(count):
                # Every element costs at least one byte, so a lying count runs out of data
                # (and raises) long before it can allocate more than the message size.
                items.append(self.value(depth + 1))
            return items
        raise self._unsupported(marker)

    def _unsupported(self, marker: int) -> Amf0DecodeError:
        if marker == AVMPLUS_OBJECT:
            return Amf0DecodeError("AMF3 (avmplus-object marker 0x11) is not supported")
        if marker == OBJECT_END:
            return Amf0DecodeError(f"unexpected AMF0 object-end marker at offset {self.pos - 1}")
        if marker in _UNSUPPORTED_NAMES:
            return Amf0DecodeError(
                f"unsupported AMF0 type {_UNSUPPORTED_NAMES[marker]} (0x{marker:02x})"
            )
        return Amf0DecodeError(f"unknown AMF0 type marker 0x{marker:02x}")


def decode_one(data: bytes, pos: int = 0) -> tuple[AmfValue, int]:
    """Decode one AMF0 value starting at ``pos``.

    Returns:
        The value and the offset just after it.

    Raises:
        Amf0DecodeError: truncated, malformed, too deeply nested, AMF3 or unsupported data.
    """
    decoder = _Decoder(data, pos)
    value = decoder.value(1)
    return value, decoder.pos


def decode(data: bytes) -> list[AmfValue]:
    """Decode all AMF0 values in ``data`` (a command or data message body).

    Raises:
        Amf0DecodeError: as :func:`decode_one`.
    """
    decoder = _Decoder(data, 0)
    values: list[AmfValue] = []
    while decoder.pos < len(data):
        values.append(decoder.value(1))
    return values
