"""AMF0 encoding/decoding, including hostile input (docs/threat-model.md §rtmp)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtmp import amf0
from media.rtmp.amf0 import UNDEFINED, Amf0DecodeError, AmfDate, AmfValue, EcmaArray
from media.rtmp.errors import LocalProtocolError, RtmpError

keys = st.text(max_size=20)
scalars = st.one_of(
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=50),
    st.none(),
    st.just(UNDEFINED),
    st.builds(AmfDate, st.floats(allow_nan=False), st.integers(-32768, 32767)),
)
values: st.SearchStrategy[AmfValue] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys.filter(bool), children, max_size=5),
        st.dictionaries(keys.filter(bool), children, max_size=5).map(EcmaArray),
    ),
    max_leaves=30,
)


@given(values)
def test_roundtrip(value: AmfValue) -> None:
    """decode(encode(v)) == v for every supported value."""
    assert amf0.decode(amf0.encode(value)) == [value]


@given(values)
def test_ecma_array_type_survives(value: AmfValue) -> None:
    """ECMA arrays decode back as EcmaArray, plain objects as dict."""
    decoded = amf0.decode(amf0.encode(EcmaArray(v=value)))[0]
    assert isinstance(decoded, EcmaArray)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_rtmp_error(data: bytes) -> None:
    """Hostile bytes raise Amf0DecodeError (an RtmpError and ValueError), nothing else."""
    try:
        amf0.decode(data)
    except Amf0DecodeError as exc:
        assert isinstance(exc, RtmpError) and isinstance(exc, ValueError)


def test_connect_command_wire_format() -> None:
    """AMF0 §2.2/2.4/2.5: string, number and object encodings byte for byte."""
    data = amf0.encode_values("connect", 1, {"app": "live"})
    assert data == (
        b"\x02\x00\x07connect"
        + b"\x00"
        + struct.pack(">d", 1.0)
        + b"\x03\x00\x03app\x02\x00\x04live\x00\x00\x09"
    )


def test_long_string() -> None:
    """AMF0 §2.14: strings over 65535 bytes use the long-string marker."""
    text = "x" * 70000
    data = amf0.encode(text)
    assert data[0] == 0x0C
    assert amf0.decode(data) == [text]


def test_nan_roundtrips_as_nan() -> None:
    (value,) = amf0.decode(amf0.encode(math.nan))
    assert isinstance(value, float) and math.isnan(value)


def test_deep_nesting_rejected() -> None:
    """docs/threat-model.md §rtmp: nesting is limited to 32 levels."""
    data = b"\x0a\x00\x00\x00\x01" * 10_000 + b"\x05"
    with pytest.raises(Amf0DecodeError, match="nesting deeper than 32"):
        amf0.decode(data)


def test_nesting_at_limit_is_accepted() -> None:
    data = b"\x0a\x00\x00\x00\x01" * 31 + b"\x05"
    assert amf0.decode(data)


def test_giant_ecma_count_does_not_allocate() -> None:
    """docs/threat-model.md §rtmp: an ECMA array count of 2^32-1 is advisory and allocates
    nothing."""
    data = b"\x08\xff\xff\xff\xff" + b"\x00\x01a\x05" + b"\x00\x00\x09"
    assert amf0.decode(data) == [{"a": None}]


def test_giant_strict_array_count_fails_fast() -> None:
    """docs/threat-model.md §rtmp: a lying strict-array count runs out of data instead of
    allocating."""
    with pytest.raises(Amf0DecodeError, match="truncated"):
        amf0.decode(b"\x0a\xff\xff\xff\xff\x05\x05")


def test_truncated_string() -> None:
    with pytest.raises(Amf0DecodeError) as info:
        amf0.decode(b"\x02\x00\x10abc")
    assert str(info.value) == "AMF0 string truncated: need 16 bytes at offset 3, have 3"


def test_missing_object_end() -> None:
    """docs/threat-model.md §rtmp: an object without its end marker is truncated input."""
    with pytest.raises(Amf0DecodeError, match="truncated"):
        amf0.decode(b"\x03\x00\x01a\x05")


def test_amf3_switch_rejected() -> None:
    """docs/threat-model.md §rtmp / nginx-rtmp #1043: the AMF3 switch marker is refused clearly."""
    with pytest.raises(Amf0DecodeError) as info:
        amf0.decode(b"\x11\x04\x01")
    assert str(info.value) == "AMF3 (avmplus-object marker 0x11) is not supported"


@pytest.mark.parametrize("marker", [0x04, 0x07, 0x0D, 0x0E, 0x10])
def test_unsupported_markers(marker: int) -> None:
    with pytest.raises(Amf0DecodeError, match="unsupported AMF0 type"):
        amf0.decode(bytes([marker]) + bytes(8))


def test_unknown_marker() -> None:
    with pytest.raises(Amf0DecodeError) as info:
        amf0.decode(b"\x42")
    assert str(info.value) == "unknown AMF0 type marker 0x42"


def test_invalid_utf8() -> None:
    with pytest.raises(Amf0DecodeError, match="not valid UTF-8"):
        amf0.decode(b"\x02\x00\x01\xff")


def test_encode_rejects_unknown_types() -> None:
    with pytest.raises(LocalProtocolError):
        amf0.encode(object())
