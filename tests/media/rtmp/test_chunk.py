"""Chunk stream parsing (RTMP 1.0 §5.3) and its limits (docs/threat-model.md §rtmp)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.rtmp.chunk import (
    ChunkReader,
    ChunkWriter,
    RawMessage,
    encode_basic_header,
)
from media.rtmp.errors import RemoteProtocolError, RtmpError
from media.rtmp.messages import Abort, SetChunkSize
from tests.media.rtmp.rtmp_factory import (
    ChunkParser,
    GeneratorChunkParser,
    any_chunk,
    chunk,
    feed_all_ways,
    mixed_chunk_stream,
)


def raw(type_id: int, msid: int, ts: int, payload: bytes) -> RawMessage:
    return RawMessage(type_id, msid, ts, payload)


def test_type0_single_chunk() -> None:
    """§5.3.1.2.1: a type-0 header carries timestamp, length, type id and stream id."""
    data = chunk(0, 3, b"hello", timestamp=1000, type_id=20, msid=0)
    feed_all_ways(ChunkParser, data, [raw(20, 0, 1000, b"hello")])


def test_message_stream_id_is_little_endian() -> None:
    """§5.3.1.2.1: message stream id is stored little-endian."""
    data = bytes([0x04]) + bytes(3) + (3).to_bytes(3, "big") + b"\x09" + b"\x01\x02\x00\x00"
    assert ChunkParser().feed(data + b"abc") == [raw(9, 0x0201, 0, b"abc")]


@pytest.mark.parametrize(
    ("csid", "encoded"),
    [(2, b"\x02"), (63, b"\x3f"), (64, b"\x00\x00"), (319, b"\x00\xff"), (320, b"\x01\x00\x01")],
)
def test_basic_header_forms(csid: int, encoded: bytes) -> None:
    """§5.3.1.1: 1-byte csid 2-63, 2-byte 64-319, 3-byte 64-65599."""
    assert encode_basic_header(0, csid) == encoded
    data = chunk(0, csid, b"x", type_id=8, msid=1)
    feed_all_ways(ChunkParser, data, [raw(8, 1, 0, b"x")])


def test_three_byte_csid_max() -> None:
    """§5.3.1.1: the 3-byte form reaches csid 65599."""
    assert encode_basic_header(1, 65599) == b"\x41\xff\xff"
    assert ChunkParser().feed(chunk(0, 65599, b"z", type_id=8, msid=1)) == [raw(8, 1, 0, b"z")]


def test_type1_type2_type3_delta_accumulation() -> None:
    """§5.3.1.2.2-4: deltas accumulate; type 3 repeats the last delta for a new message."""
    data = (
        chunk(0, 6, b"a", timestamp=100, type_id=9, msid=1)
        + chunk(1, 6, b"bb", timestamp=40, type_id=9)
        + chunk(2, 6, b"cc", timestamp=33)
        + chunk(3, 6, b"dd")
    )
    expected = [raw(9, 1, 100, b"a"), raw(9, 1, 140, b"bb"), raw(9, 1, 173, b"cc")]
    expected.append(raw(9, 1, 206, b"dd"))
    feed_all_ways(ChunkParser, data, expected)


def test_type3_after_type0_uses_timestamp_as_delta() -> None:
    """§5.3.1.2.4: a type-3 chunk after a type-0 chunk uses its timestamp as the delta."""
    data = chunk(0, 6, b"a", timestamp=20, type_id=8, msid=1) + chunk(3, 6, b"b")
    assert ChunkParser().feed(data) == [raw(8, 1, 20, b"a"), raw(8, 1, 40, b"b")]


def test_multi_chunk_message_and_interleaving() -> None:
    """§5.3.2.2: messages split into chunks may interleave across chunk streams."""
    video = bytes(range(200))
    data = (
        chunk(0, 6, video[:128], length=200, type_id=9, msid=1, timestamp=5)
        + chunk(0, 4, b"audio", type_id=8, msid=1, timestamp=6)
        + chunk(3, 6, video[128:])
    )
    feed_all_ways(ChunkParser, data, [raw(8, 1, 6, b"audio"), raw(9, 1, 5, video)])


def test_extended_timestamp_type0_and_type3_repetition() -> None:
    """§5.3.1.3: 0xFFFFFF means a 4-byte extended timestamp; type-3 chunks repeat it."""
    payload = bytes(150)
    data = chunk(0, 6, payload[:128], length=150, type_id=9, msid=1, timestamp=0x01000000) + chunk(
        3, 6, payload[128:], extended_timestamp=0x01000000
    )
    assert data[1:4] == b"\xff\xff\xff"
    feed_all_ways(ChunkParser, data, [raw(9, 1, 0x01000000, payload)])


def test_extended_timestamp_delta() -> None:
    """§5.3.1.3: type 1/2 deltas use the extended field too."""
    data = chunk(0, 6, b"a", type_id=9, msid=1, timestamp=10) + chunk(
        2, 6, b"b", timestamp=0xFFFFFF + 5
    )
    assert ChunkParser().feed(data)[1] == raw(9, 1, 10 + 0xFFFFFF + 5, b"b")


def test_timestamp_wraps_at_32_bits() -> None:
    """RTMP timestamps are 32-bit and wrap (§5.3.1.2)."""
    data = chunk(0, 6, b"a", type_id=9, msid=1, timestamp=0xFFFFFFF0) + chunk(
        2, 6, b"b", timestamp=0x20
    )
    assert ChunkParser().feed(data)[1].timestamp == 0x10  # type: ignore[attr-defined]


def test_set_chunk_size_mid_stream() -> None:
    """§5.4.1: a new chunk size applies to chunks after the SetChunkSize message."""
    body = bytes(range(256)) * 2
    data = (
        chunk(0, 2, SetChunkSize(300).serialize(), type_id=1)
        + chunk(0, 6, body[:300], length=512, type_id=9, msid=1)
        + chunk(3, 6, body[300:])
    )
    out = ChunkParser().feed(data)
    assert out[1] == raw(9, 1, 0, body)


def test_set_chunk_size_between_chunks_of_a_message() -> None:
    """docs/threat-model.md §rtmp: a chunk size change in the middle of a message is safe."""
    body = bytes(300)
    data = (
        chunk(0, 6, body[:128], length=300, type_id=9, msid=1)
        + chunk(0, 2, SetChunkSize(4096).serialize(), type_id=1)
        + chunk(3, 6, body[128:])
    )
    assert ChunkParser().feed(data)[1] == raw(9, 1, 0, body)


def test_abort_discards_partial_message() -> None:
    """§5.4.2: Abort discards the partially received message on a chunk stream."""
    parser = ChunkParser()
    data = (
        chunk(0, 6, bytes(128), length=300, type_id=9, msid=1)
        + chunk(0, 2, Abort(6).serialize(), type_id=2)
        + chunk(0, 6, b"new", type_id=9, msid=1)
    )
    out = parser.feed(data)
    assert out[-1] == raw(9, 1, 0, b"new")
    assert parser.chunks.buffered_bytes == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "SetChunkSize of 0 is invalid"),
        (0x80000000, "SetChunkSize 0x80000000 has the high bit set"),
        (0xFFFFFFFF, "SetChunkSize 0xffffffff has the high bit set"),
    ],
)
def test_set_chunk_size_invalid(value: int, message: str) -> None:
    """§5.4.1 / docs/threat-model.md §rtmp: 0 and values with the high bit set are errors."""
    with pytest.raises(RemoteProtocolError) as info:
        SetChunkSize.parse(value.to_bytes(4, "big"))
    assert str(info.value) == message


def test_set_chunk_size_huge_is_clamped() -> None:
    """docs/threat-model.md §rtmp: 0x7FFFFFFF is accepted but clamped; nothing is allocated from
    it."""
    reader = ChunkReader()
    reader.set_chunk_size(0x7FFFFFFF)
    assert reader.chunk_size == 0xFFFFFF


def test_message_too_big_media() -> None:
    """docs/threat-model.md §rtmp: media messages over the cap are a protocol error."""
    parser = ChunkParser(max_media_message_size=1000)
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(chunk(0, 6, b"", length=1001, type_id=9, msid=1))
    assert str(info.value) == "message of 1001 bytes exceeds the 1000-byte limit for message type 9"


def test_message_too_big_control() -> None:
    """docs/threat-model.md §rtmp: command/AMF messages are capped at 1 MiB by default."""
    with pytest.raises(RemoteProtocolError) as info:
        ChunkParser().feed(chunk(0, 3, b"", length=0xFFFFFF, type_id=20))
    assert str(info.value) == (
        "message of 16777215 bytes exceeds the 1048576-byte limit for message type 20"
    )


def test_declared_length_does_not_preallocate() -> None:
    """Allocation follows received bytes, never the declared length (docs/threat-model.md §rtmp)."""
    parser = ChunkParser()
    parser.feed(chunk(0, 6, bytes(128), length=8 << 20, type_id=9, msid=1))
    assert parser.chunks.buffered_bytes == 128


def test_too_many_chunk_streams() -> None:
    """docs/threat-model.md §rtmp: at most 64 chunk streams per connection."""
    parser = ChunkParser()
    data = b"".join(chunk(0, 2 + i, b"", type_id=8, msid=1) for i in range(64))
    assert len(parser.feed(data)) == 64
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(chunk(0, 65599, b"", type_id=8, msid=1))
    assert str(info.value) == "too many chunk streams (limit 64)"


def test_total_buffered_bytes_limit() -> None:
    """docs/threat-model.md §rtmp: partial messages across chunk streams share a 2x max-message
    budget."""
    parser = ChunkParser(max_media_message_size=1000, max_control_message_size=100)
    parser.chunks.set_chunk_size(500)
    for csid in (6, 7, 8, 9):
        parser.feed(chunk(0, csid, bytes(500), length=1000, type_id=9, msid=1))
    assert parser.chunks.buffered_bytes == 2000
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(chunk(0, 10, bytes(500), length=1000, type_id=9, msid=1))
    assert str(info.value) == "partial messages exceed 2000 buffered bytes"


def test_first_chunk_must_be_type0() -> None:
    """§5.3.1.2: type 1-3 chunks need state from an earlier type-0 chunk."""
    with pytest.raises(RemoteProtocolError) as info:
        ChunkParser().feed(chunk(1, 5, b"x", type_id=8))
    assert str(info.value) == "first chunk on chunk stream 5 has type 1, expected type 0"


def test_new_header_inside_message_is_an_error() -> None:
    """§5.3.1.2.4: only type-3 chunks continue a message."""
    data = chunk(0, 6, bytes(128), length=200, type_id=9, msid=1) + chunk(1, 6, b"x", type_id=9)
    with pytest.raises(RemoteProtocolError, match="interrupts a 200-byte message"):
        ChunkParser().feed(data)


def test_zero_length_message() -> None:
    """A zero-length message completes immediately."""
    assert ChunkParser().feed(chunk(0, 6, b"", type_id=9, msid=1)) == [raw(9, 1, 0, b"")]


def test_writer_roundtrip_with_small_chunks_and_extended_timestamp() -> None:
    """Our chunk writer output parses back to the same message."""
    writer = ChunkWriter(chunk_size=50)
    payload = bytes(range(256)) * 3
    data = writer.write(7, 9, 3, 0x12345678, payload)
    parser = ChunkParser()
    parser.chunks.set_chunk_size(50)
    assert parser.feed(data) == [raw(9, 3, 0x12345678, payload)]


def test_errors_are_value_errors() -> None:
    """Parse errors are both RtmpError and ValueError (PyAV's trick)."""
    with pytest.raises(ValueError):
        SetChunkSize.parse(b"\x00\x00\x00\x00")
    assert issubclass(RemoteProtocolError, RtmpError)


# ----------------------------------------------- in-place parsing vs the generator path



def _parse_with(factory: type[ChunkParser], pieces: list[bytes], **limits: int
                ) -> tuple[list[object], str | None]:
    """Messages parsed from ``pieces`` fed one by one, and the error that stopped it."""
    parser = factory(**limits)
    got: list[object] = []
    try:
        for piece in pieces:
            got += parser.feed(piece)
    except RemoteProtocolError as exc:
        return got + parser._out, f"{type(exc).__name__}: {exc}"  # and the ones before it
    return got, None


def _chunk_ops() -> st.SearchStrategy[bytes]:
    """Chunks with every header type, csid form and (extended) timestamp, valid or not."""
    return any_chunk() | st.sampled_from([
        chunk(0, 2, SetChunkSize(200).serialize(), type_id=1),
        chunk(0, 2, SetChunkSize(64).serialize(), type_id=1),
        chunk(0, 2, Abort(6).serialize(), type_id=2),
    ])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_chunk_ops(), max_size=12), st.lists(st.integers(0, 1 << 16), max_size=6))
def test_in_place_parsing_matches_the_generator_path(ops: list[bytes], cuts: list[int]) -> None:
    """try_payload (parsing complete chunks in place) gives the same messages and the same
    error as read_chunk for any chunk sequence, however the input is split."""
    data = b"".join(ops)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    limits = {"max_media_message_size": 600, "max_control_message_size": 400,
              "max_chunk_streams": 5}
    expected = _parse_with(GeneratorChunkParser, [data], **limits)
    assert _parse_with(ChunkParser, pieces, **limits) == expected
    assert _parse_with(GeneratorChunkParser, pieces, **limits) == expected


def test_in_place_parsing_matches_the_generator_path_at_every_split() -> None:
    """A stream using every header type, the long csid forms, extended timestamps, a chunk
    size change and interleaved messages parses the same both ways, split at every byte."""
    data = mixed_chunk_stream()
    expected = _parse_with(GeneratorChunkParser, [data])
    assert len(expected[0]) == 8 and expected[1] is None
    for cut in range(len(data) + 1):
        pieces = [data[:cut], data[cut:]]
        assert _parse_with(ChunkParser, pieces) == expected, cut
        assert _parse_with(GeneratorChunkParser, pieces) == expected, cut
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert _parse_with(ChunkParser, one_by_one) == expected
