"""Property tests: hostile bytes never crash the parsers and memory stays bounded."""

from __future__ import annotations

import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.rtmp.errors import RtmpError
from media.rtmp.session import (
    ProtocolFailed,
    PublishRequested,
    RtmpServerSession,
    SessionState,
)
from tests.media.rtmp.rtmp_factory import (
    ChunkParser,
    ClientWriter,
    chunk,
    connect_command,
    handshake,
)


def _client_stream() -> bytes:
    c = ClientWriter()
    name, txid, obj = connect_command()
    return (
        handshake()
        + c.command(0, name, txid, obj)
        + c.set_chunk_size(4096)
        + c.command(0, "releaseStream", 2.0, None, "k")
        + c.command(0, "FCPublish", 3.0, None, "k")
        + c.command(0, "createStream", 4.0, None)
        + c.command(1, "publish", 5.0, None, "k", "live")
        + c.data(1, "@setDataFrame", "onMetaData", {"width": 320.0})
        + c.video(1, 0, b"\x17\x00\x00\x00\x00" + bytes(300))
        + c.audio(1, 0, b"\xaf\x00\x12\x10")
    )


VALID = _client_stream()


def _check_session(chunks: list[bytes], with_sink: bool = False) -> RtmpServerSession:
    """Feed ``chunks``, accepting any publish (``with_sink``: and giving it a media sink, as
    the appliance does; the sink then sees only bytes bodies of the publishing stream)."""
    session = RtmpServerSession()

    def sink(timestamp: int, body: bytes, video: bool) -> None:
        assert isinstance(body, bytes) and 0 <= timestamp <= 0xFFFFFFFF
        assert session.publishing_stream_id is not None

    for data in chunks:
        session.receive_data(data)  # must never raise
        for event in session.events():
            if isinstance(event, PublishRequested):
                if session.accept_publish(event.message_stream_id) and with_sink:
                    session.set_media_sink(sink)
            if isinstance(event, ProtocolFailed):
                assert "internal error" not in str(event.error)
                assert session.state is SessionState.ERROR
        session.data_to_send()
    session.receive_data(b"")
    return session


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_session_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    """Arbitrary bytes never raise out of receive_data."""
    _check_session(chunks)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_session_after_handshake_arbitrary_bytes(chunks: list[bytes]) -> None:
    """Arbitrary chunk-layer bytes after a valid handshake never raise."""
    _check_session([handshake(), *chunks])


@settings(max_examples=300)
@given(st.integers(0, len(VALID)), st.binary(max_size=64), st.integers(0, len(VALID)),
       st.booleans())
def test_session_mutated_valid_stream(cut: int, garbage: bytes, pos: int, with_sink: bool
                                      ) -> None:
    """Truncated, spliced and corrupted valid client streams never raise, with the accepted
    publish's media as events or through a media sink."""
    mutated = VALID[:pos] + garbage + VALID[pos + len(garbage) :]
    _check_session([mutated[:cut], mutated[cut:]], with_sink)


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_chunk_parser_only_raises_rtmp_error(data: bytes) -> None:
    """The chunk parser raises RtmpError (or waits for more data), nothing else."""
    parser = ChunkParser()
    try:
        parser.feed(data)
    except RtmpError:
        pass


def test_declared_huge_message_with_few_bytes_stays_small() -> None:
    """A declared 0xFFFFFF-byte message with a few bytes sent must not allocate 16 MiB."""
    session = RtmpServerSession(max_media_message_size=0xFFFFFF)
    session.receive_data(VALID)
    session.accept_publish(1)
    tracemalloc.start()
    try:
        session.receive_data(chunk(0, 6, bytes(100), length=0xFFFFFF, type_id=9, msid=1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert session.state is not SessionState.ERROR


def test_many_partial_messages_are_bounded() -> None:
    """Interleaved partial messages on many chunk streams hit the buffered-bytes cap."""
    session = RtmpServerSession(max_media_message_size=10_000, max_control_message_size=1000)
    session.receive_data(VALID)
    session.accept_publish(1)
    session.events()
    writer = b"".join(
        chunk(0, 10 + i, bytes(4096), length=10_000, type_id=9, msid=1) for i in range(40)
    )
    session.receive_data(writer)
    (failed,) = [e for e in session.events() if isinstance(e, ProtocolFailed)]
    assert str(failed.error) == "partial messages exceed 20000 buffered bytes"
