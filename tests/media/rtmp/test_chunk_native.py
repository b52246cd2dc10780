"""The C chunk reader (media/rtmp/_chunks.c) against the Python one (media/rtmp/chunk.py).

``ChunkReader.parse_run`` in Python is the reference: for any input, however it is split, and
whatever chunk sizes, aborts and run limits interleave, the C reader must return the same
messages, raise the same error with the same text at the same point, and report the same
state. Hostile input may only ever raise :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.rtmp.buffer import StreamReader
from media.rtmp.chunk import (
    NATIVE_CHUNK_READER,
    ChunkReader,
    MessageRunReader,
    MessageTuple,
    message_run_reader,
)
from media.rtmp.errors import LocalProtocolError, RemoteProtocolError
from media.rtmp.messages import Abort, SetChunkSize
from tests.helpers.native import compiler_and_headers
from tests.media.rtmp.rtmp_factory import CSIDS, any_chunk, chunk, mixed_chunk_stream


def test_the_native_reader_is_built_where_it_can_be() -> None:
    """Where a C compiler and the Python headers exist (CI installs both), the install built
    the C reader: a broken build must not pass unnoticed as the slower fallback."""
    if not compiler_and_headers():
        pytest.skip("no C compiler or Python headers here: the Python reader serves")
    assert NATIVE_CHUNK_READER is not None, "media/rtmp/_chunks.c was not built (pip install -e .)"


needs_native = pytest.mark.skipif(NATIVE_CHUNK_READER is None,
                                  reason="the C chunk reader is not built here")

_LIMITS = {"max_media_message_size": 600, "max_control_message_size": 400,
           "max_chunk_streams": 5}


class Driver:
    """Feeds pieces to a reader the way RtmpServerSession does: parse_run until it parses
    nothing, acting on SetChunkSize and Abort before the next chunk; records everything
    observable."""

    def __init__(self, reader: MessageRunReader, max_chunks: int = -1) -> None:
        self.reader = reader
        self.stream = StreamReader()
        self.max_chunks = max_chunks
        self.log: list[object] = []

    def feed(self, piece: bytes) -> None:
        self.stream.feed_data(piece)
        while True:
            chunks, messages = self.reader.parse_run(self.stream, self.max_chunks)
            self.log.append(("run", chunks, len(messages)))
            if not chunks:
                break
            for message in messages:
                self._handle(message)
        r = self.reader
        self.log.append(("state", r.chunk_size, r.buffered_bytes, r.pending_payload_bytes,
                         r.chunk_stream_count, r.smallest_message, self.stream.buffered))

    def _handle(self, message: MessageTuple) -> None:
        self.log.append(message)
        type_id, _, _, payload = message
        if type_id == 1 and len(payload) == 4:
            size = int.from_bytes(payload, "big")
            try:
                self.reader.set_chunk_size(size)
            except LocalProtocolError as exc:
                self.log.append(("chunk size refused", str(exc)))
        elif type_id == 2 and len(payload) == 4:
            self.reader.abort(int.from_bytes(payload, "big"))
        elif type_id == 8 and payload[:1] == b"\xff":
            self.reader.smallest_message = 0  # the owner resets it, as coalescing does


def run(reader: MessageRunReader, pieces: list[bytes], max_chunks: int = -1) -> list[object]:
    driver = Driver(reader, max_chunks)
    try:
        for piece in pieces:
            driver.feed(piece)
    except RemoteProtocolError as exc:
        driver.log.append(("error", str(exc), driver.stream.buffered))
    return driver.log


def both(pieces: list[bytes], max_chunks: int = -1, **limits: int) -> list[object]:
    assert NATIVE_CHUNK_READER is not None
    expected = run(ChunkReader(**limits), pieces, max_chunks)
    assert run(NATIVE_CHUNK_READER(**limits), pieces, max_chunks) == expected
    return expected


def _chunk_ops() -> st.SearchStrategy[bytes]:
    """Chunks with every header type, csid form and (extended) timestamp, valid or not, and
    the control messages that change how later chunks parse."""
    return any_chunk(type_ids=(8, 9, 20, 18, 22, 1)) | st.builds(
        lambda size: chunk(0, 2, size.to_bytes(4, "big"), type_id=1),
        st.sampled_from((1, 7, 64, 200, 0x7FFFFFFF, 0x80000000, 0)),
    ) | st.builds(
        lambda csid: chunk(0, 2, Abort(csid).serialize(), type_id=2),
        st.sampled_from(CSIDS),
    ) | st.just(chunk(0, 5, b"\xff", type_id=8, msid=1))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@needs_native
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_chunk_ops(), max_size=14), st.lists(st.integers(0, 1 << 16), max_size=6),
       st.sampled_from((-1, 1, 2, 5)))
def test_c_matches_python_on_generated_chunks(ops: list[bytes], cuts: list[int],
                                              max_chunks: int) -> None:
    data = b"".join(ops)
    both(_split(data, cuts), max_chunks, **_LIMITS)


_OPENED = (3, 4, 320)
_OPENERS = b"".join(chunk(0, c, b"o", type_id=9, msid=1, timestamp=10) for c in _OPENED)


@needs_native
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(any_chunk(type_ids=(8, 9), csids=_OPENED, max_payload=200, max_length=500),
                max_size=14),
       st.lists(st.integers(0, 1 << 16), max_size=4))
def test_c_matches_python_on_streams_already_open(ops: list[bytes], cuts: list[int]) -> None:
    """Chunks of every type on chunk streams a type-0 chunk opened, so that deltas,
    continuations and type-3 new messages are reached (not refused at the first chunk)."""
    both(_split(_OPENERS + b"".join(ops), cuts), **_LIMITS)


@needs_native
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 1 << 16), max_size=4))
def test_c_matches_python_on_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    """Hostile input: the same outcome, and only RemoteProtocolError (run() catches only
    that, so anything else fails the test)."""
    both(_split(data, cuts), **_LIMITS)
    both(_split(data, cuts))


@needs_native
def test_c_matches_python_at_every_split() -> None:
    """The stream of test_chunk.py's every-split test (every header type, both long csid
    forms, extended timestamps, a chunk size change in the middle of a message, interleaved
    messages), split at every byte."""
    data = mixed_chunk_stream()
    expected = both([data])
    assert sum(isinstance(e, tuple) and len(e) == 4 for e in expected) == 8
    for cut in range(len(data) + 1):
        both([data[:cut], data[cut:]])
    both([data[i : i + 1] for i in range(len(data))])


@needs_native
@pytest.mark.parametrize("max_chunks", [-1, 1, 3])
def test_a_run_stops_after_a_message_that_is_not_media(max_chunks: int) -> None:
    """The caller acts on a chunk size (or a publish) before the next chunk is parsed."""
    data = (chunk(0, 6, b"v1", type_id=9, msid=1) + chunk(0, 7, b"a1", type_id=8, msid=1)
            + chunk(0, 2, SetChunkSize(4).serialize(), type_id=1)
            + chunk(0, 6, b"01234567", type_id=9, msid=1))
    for cls in (ChunkReader, NATIVE_CHUNK_READER):
        assert cls is not None
        stream = StreamReader()
        stream.feed_data(data)
        reader = cls()
        chunks, messages = reader.parse_run(stream, max_chunks)
        assert messages[-1][0] == (1 if max_chunks == -1 else messages[-1][0])
        assert chunks == len(messages) == (3 if max_chunks == -1 else min(max_chunks, 3))


@needs_native
def test_an_error_after_messages_is_raised_by_the_next_run() -> None:
    """Messages before a violation are returned first; the violation is raised next, with
    nothing of the bad chunk consumed."""
    bad = chunk(1, 9, b"x", type_id=9)  # type 1 cannot open a chunk stream
    data = chunk(0, 6, b"v1", type_id=9, msid=1) + bad
    for cls in (ChunkReader, NATIVE_CHUNK_READER):
        assert cls is not None
        stream = StreamReader()
        stream.feed_data(data)
        reader = cls()
        assert reader.parse_run(stream, -1) == (1, [(9, 1, 0, b"v1")])
        with pytest.raises(RemoteProtocolError,
                           match="first chunk on chunk stream 9 has type 1, expected type 0"):
            reader.parse_run(stream, -1)
        assert stream.buffered == len(bad)


@needs_native
def test_limits_and_their_errors_match() -> None:
    """Each limit of docs/threat-model.md §rtmp, refused with the same words."""
    cases = [
        # a message over its type's cap, refused at its header
        [chunk(0, 6, b"", length=601, type_id=9, msid=1)],
        [chunk(0, 3, b"", length=401, type_id=20)],
        # too many chunk streams
        [b"".join(chunk(0, c, b"x", type_id=8, msid=1) for c in range(3, 10))],
        # partial messages over the buffered total (2 x the largest cap)
        [b"".join(chunk(0, c, bytes(128), length=600, type_id=9, msid=1)
                  for c in range(3, 8)) + chunk(3, 3, bytes(128)) * 4
         + chunk(3, 4, bytes(128)) * 4],
        # a chunk that interrupts a partial message
        [chunk(0, 6, bytes(128), length=300, type_id=9, msid=1)
         + chunk(0, 6, b"x", type_id=9, msid=1)],
    ]
    for pieces in cases:
        log = both(pieces, **_LIMITS)
        assert log[-1][0] == "error", log


@needs_native
def test_partial_messages_grow_by_what_arrived() -> None:
    """A header may claim 8 MiB; what is held is what was sent (no allocation from the
    claim), and an abort releases it."""
    assert NATIVE_CHUNK_READER is not None
    stream = StreamReader()
    reader = NATIVE_CHUNK_READER()
    for csid in range(3, 60):
        stream.feed_data(chunk(0, csid, bytes(128), length=8 << 20, type_id=9, msid=1))
    assert reader.parse_run(stream, -1) == (57, [])
    assert reader.buffered_bytes == 57 * 128
    assert reader.pending_payload_bytes == (8 << 20) - 128
    for csid in range(3, 60):
        reader.abort(csid)
    assert reader.buffered_bytes == 0 and reader.pending_payload_bytes == 0
    reader.abort(1 << 70)  # no such chunk stream: nothing happens, as in Python
    reader.abort(-1)


@needs_native
@pytest.mark.parametrize("size", [0, -5, 0x80000000, 1 << 80])
def test_set_chunk_size_refuses_what_python_refuses(size: int) -> None:
    assert NATIVE_CHUNK_READER is not None
    for reader in (ChunkReader(), NATIVE_CHUNK_READER()):
        with pytest.raises(LocalProtocolError, match=f"chunk size {size} out of range"):
            reader.set_chunk_size(size)
    native = NATIVE_CHUNK_READER()
    native.set_chunk_size(0x7FFFFFFF)
    assert native.chunk_size == 0xFFFFFF  # clamped like ChunkReader.set_chunk_size


@needs_native
def test_message_limits_change_for_later_messages() -> None:
    assert NATIVE_CHUNK_READER is not None
    python, native = ChunkReader(), NATIVE_CHUNK_READER()
    for reader in (python, native):
        reader.set_message_limits(1000, 50)
    assert (native.max_media_message_size, native.max_control_message_size,
            native.max_buffered_bytes) == (1000, 50, 2000) == (
        python.max_media_message_size, python.max_control_message_size,
        python.max_buffered_bytes)
    both([chunk(0, 3, bytes(60), type_id=20)], max_media_message_size=1000,
         max_control_message_size=50)


def test_the_setting_chooses_the_reader() -> None:
    limits = {"max_media_message_size": 10, "max_control_message_size": 10,
              "max_chunk_streams": 3}
    assert type(message_run_reader(native=False, **limits)) is ChunkReader
    chosen = type(message_run_reader(native=True, **limits))
    assert chosen is (NATIVE_CHUNK_READER or ChunkReader)
