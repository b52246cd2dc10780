"""RtmpClientSession (the restream publisher, docs/threat-model.md §restream): the whole
conversation against our own server session, pings/acks/chunk sizes, refusals, hostile
servers, and a hypothesis property that server bytes never raise and fail only as
RemoteProtocolError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.rtmp import amf0
from media.rtmp.amf0 import AmfValue
from media.rtmp.chunk import ChunkWriter
from media.rtmp.client import (
    ClientState,
    PublishFailed,
    PublishStarted,
    RtmpClientSession,
    ServerClosed,
)
from media.rtmp.errors import LocalProtocolError, RemoteProtocolError
from media.rtmp.handshake import HANDSHAKE_SIZE
from media.rtmp.messages import (
    Acknowledgement,
    CommandMessage,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    UserControlEventType,
    WindowAcknowledgementSize,
)
from media.rtmp.session import (
    AudioReceived,
    PublishRequested,
    RtmpServerSession,
    StreamMetadata,
    Unpublished,
    VideoReceived,
)
from tests.media.rtmp.rtmp_factory import ServerBytesDecoder

KEY = "live_123456_sekritKEY"


def client(**kw: object) -> RtmpClientSession:
    return RtmpClientSession(app="live", tc_url="rtmp://127.0.0.1:1935/live", stream_name=KEY,
                             **kw)  # type: ignore[arg-type]


def pump(c: RtmpClientSession, s: RtmpServerSession, *, accept: bool = True) -> list[object]:
    """Exchange bytes until both sides are quiet; returns the server's events."""
    seen: list[object] = []
    for _ in range(20):
        out = c.data_to_send()
        if out:
            s.receive_data(out)
        for ev in s.events():
            seen.append(ev)
            if isinstance(ev, PublishRequested) and accept:
                s.accept_publish(ev.message_stream_id)
        back = s.data_to_send()
        if back:
            c.receive_data(back)
        if not out and not back:
            break
    return seen


def publishing_pair() -> tuple[RtmpClientSession, RtmpServerSession]:
    c, s = client(), RtmpServerSession()
    events = pump(c, s)
    assert any(isinstance(e, PublishRequested) and e.stream_name == KEY for e in events)
    assert c.state is ClientState.PUBLISHING
    assert c.events() == [PublishStarted(c.message_stream_id or 0)]
    return c, s


def test_publishes_media_and_metadata_to_a_server_session() -> None:
    c, s = publishing_pair()
    big = b"\x17\x01\x00\x00\x00" + bytes(range(256)) * 100  # spans several 4096-byte chunks
    c.send_metadata({"width": 1280.0, "videocodecid": 7.0})
    c.send_video(40, big)
    c.send_audio(0x1000000 + 5, b"\xaf\x01abc")  # extended timestamp
    s.receive_data(c.data_to_send())
    events = s.events()
    assert StreamMetadata(1, {"width": 1280.0, "videocodecid": 7.0}) in events
    assert VideoReceived(1, 40, big) in events
    assert AudioReceived(1, 0x1000005, b"\xaf\x01abc") in events
    c.close()
    s.receive_data(c.data_to_send())
    assert Unpublished(1) in s.events()
    assert c.state is ClientState.CLOSED
    with pytest.raises(LocalProtocolError):
        c.send_video(0, b"x")


def test_media_before_publish_start_is_a_caller_error() -> None:
    with pytest.raises(LocalProtocolError):
        client().send_video(0, b"\x17")
    c, s = client(), RtmpServerSession()
    pump(c, s, accept=False)
    assert c.state is ClientState.PUBLISH_REQUESTED
    with pytest.raises(LocalProtocolError):
        c.send_audio(0, b"\xaf")


def test_the_key_never_appears_in_repr() -> None:
    assert KEY not in repr(client())


# ---- a scripted server -------------------------------------------------------------------------


class FakeServer:
    """Server → client bytes written by hand (ChunkWriter), to script any answer."""

    def __init__(self) -> None:
        self.writer = ChunkWriter()
        self.decoder = ServerBytesDecoder()

    def handshake(self) -> bytes:
        return bytes((3,)) + bytes(HANDSHAKE_SIZE) + bytes(HANDSHAKE_SIZE)

    def message(self, type_id: int, payload: bytes, msid: int = 0, csid: int = 3) -> bytes:
        return self.writer.write(csid, type_id, msid, 0, payload)

    def command(self, name: str, txid: float, obj: AmfValue, *args: AmfValue,
                msid: int = 0) -> bytes:
        return self.message(20, CommandMessage(name, txid, obj, args).serialize(), msid)

    def status(self, level: str, code: str, description: str = "", msid: int = 1) -> bytes:
        info: dict[str, AmfValue] = {"level": level, "code": code, "description": description}
        return self.command("onStatus", 0.0, None, info, msid=msid)

    def shake(self, c: RtmpClientSession) -> list[object]:
        """Complete the handshake; returns the client's first messages (past C0/C1/C2)."""
        c.data_to_send()  # C0+C1
        c.receive_data(self.handshake())
        return [r.message for r in self.decoder.decode(c.data_to_send()[HANDSHAKE_SIZE:])]

    def to_publish_request(self, c: RtmpClientSession, *, shaken: bool = False) -> None:
        if not shaken:
            self.shake(c)
        c.receive_data(self.command("_result", 1.0, {"fmsVer": "x"}, {"code": "ok"}))
        c.receive_data(self.command("_result", 4.0, None, 1.0))
        assert c.state is ClientState.PUBLISH_REQUESTED

    def sent(self, c: RtmpClientSession) -> list[object]:
        return [r.message for r in self.decoder.decode(c.data_to_send())]


def test_handshake_echoes_s1_then_announces_the_chunk_size_and_connects() -> None:
    c, srv = client(random_bytes=bytes(1528)), FakeServer()
    c0c1 = c.data_to_send()
    assert len(c0c1) == 1 + HANDSHAKE_SIZE and c0c1[0] == 3
    s1 = bytes(range(256)) * 6
    c.receive_data(bytes((3,)) + s1)
    assert c.data_to_send() == s1  # C2 echoes S1 (§5.2.4)
    c.receive_data(bytes(HANDSHAKE_SIZE))  # S2
    messages = srv.sent(c)
    assert messages[0] == SetChunkSize(4096)
    connect = messages[1]
    assert isinstance(connect, CommandMessage) and connect.command_name == "connect"
    assert isinstance(connect.command_object, dict)
    assert connect.command_object["tcUrl"] == "rtmp://127.0.0.1:1935/live"
    assert KEY not in repr(connect.command_object)


def test_answers_pings_acknowledges_the_window_and_sets_its_own() -> None:
    c, srv = client(), FakeServer()
    srv.shake(c)
    c.receive_data(srv.message(5, WindowAcknowledgementSize(100).serialize(), csid=2)
                   + srv.message(6, SetPeerBandwidth(5000, 2).serialize(), csid=2)
                   + srv.message(4, UserControl(UserControlEventType.PING_REQUEST,
                                                b"\x00\x00\x12\x34").serialize(), csid=2))
    messages = srv.sent(c)
    assert WindowAcknowledgementSize(5000) in messages
    assert UserControl(UserControlEventType.PING_RESPONSE, b"\x00\x00\x12\x34") in messages
    assert any(isinstance(m, Acknowledgement) for m in messages)


def test_follows_the_servers_chunk_size_even_absurd_ones() -> None:
    c, srv = client(), FakeServer()
    srv.shake(c)
    c.receive_data(srv.message(1, SetChunkSize(0x7FFFFFFF).serialize(), csid=2))
    srv.writer.chunk_size = 0x7FFFFF
    srv.to_publish_request(c, shaken=True)
    c.receive_data(srv.status("status", "NetStream.Publish.Start"))
    assert c.events() == [PublishStarted(1)]


@pytest.mark.parametrize(("answer", "code"), [
    (lambda srv: srv.command("_error", 1.0, None,
                             {"level": "error", "code": "NetConnection.Connect.Rejected",
                              "description": f"bad key {KEY}"}),
     "NetConnection.Connect.Rejected"),
    (lambda srv: srv.status("error", "NetStream.Publish.BadName", f"{KEY} is taken"),
     "NetStream.Publish.BadName"),
])
def test_refusals_fail_with_the_servers_code_and_never_echo_the_key(answer: object,
                                                                    code: str) -> None:
    c, srv = client(), FakeServer()
    if code.startswith("NetStream"):
        srv.to_publish_request(c)
    else:
        srv.shake(c)
    c.receive_data(answer(srv))  # type: ignore[operator]
    (event,) = c.events()
    assert isinstance(event, PublishFailed)
    assert event.error.on_status_hint == code
    assert KEY not in str(event.error)
    assert c.state is ClientState.ERROR
    c.receive_data(srv.status("status", "NetStream.Publish.Start"))  # ignored once failed
    assert c.events() == []


def test_an_error_status_while_publishing_fails_the_session() -> None:
    c, srv = client(), FakeServer()
    srv.to_publish_request(c)
    c.receive_data(srv.status("status", "NetStream.Publish.Start"))
    c.receive_data(srv.status("error", "NetStream.Publish.Idle", "kicked"))
    assert [type(e) for e in c.events()] == [PublishStarted, PublishFailed]


@pytest.mark.parametrize("hostile", [
    bytes((6,)) + bytes(HANDSHAKE_SIZE * 2),  # RTMPE version in S0
    b"HTTP/1.1 400 Bad Request\r\n\r\n" + bytes(4000),  # not RTMP at all
])
def test_garbage_instead_of_a_handshake_fails(hostile: bytes) -> None:
    c = client()
    c.receive_data(hostile)
    assert c.state is ClientState.ERROR
    assert isinstance(c.error, RemoteProtocolError)


def test_oversized_and_flooding_server_messages_fail() -> None:
    c, srv = client(), FakeServer()
    c.receive_data(srv.handshake())
    srv.writer.chunk_size = 1 << 20
    c.receive_data(srv.message(20, bytes(100_000)))  # > 64 KiB command
    assert c.state is ClientState.ERROR
    c2 = client()
    c2.receive_data(srv.handshake())
    for csid in range(3, 40):  # chunk stream id flood
        c2.receive_data(srv.message(18, amf0.encode_values("x"), csid=csid))
    assert c2.state is ClientState.ERROR


def test_a_bad_stream_id_fails() -> None:
    c, srv = client(), FakeServer()
    c.receive_data(srv.handshake())
    c.receive_data(srv.command("_result", 1.0, None, None))
    c.receive_data(srv.command("_result", 4.0, None, -3.0))
    assert c.state is ClientState.ERROR


def test_truncated_answers_then_eof_report_closed() -> None:
    c = client()
    c.receive_data(bytes((3,)) + bytes(100))  # S1 cut short
    c.receive_data(b"")
    assert c.events() == [ServerClosed()]
    assert c.state is ClientState.CLOSED


# ---- property: arbitrary server bytes ----------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(st.binary(max_size=400), max_size=8))
def test_arbitrary_server_bytes_never_raise(after_handshake: bool, pieces: list[bytes]) -> None:
    c = client()
    if after_handshake:
        c.receive_data(FakeServer().handshake())
    for piece in pieces:
        c.receive_data(piece)
        assert c.error is None or isinstance(c.error, RemoteProtocolError)
    c.receive_data(b"")
    assert c.state in (ClientState.CLOSED, ClientState.ERROR)
    for event in c.events():
        if isinstance(event, PublishFailed):
            assert isinstance(event.error, RemoteProtocolError)


_AMF = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=6)
_COMMAND = st.tuples(
    st.sampled_from(["_result", "_error", "onStatus", "onBWDone", "close", "x"]),
    st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0, 1e300]),
    _AMF, st.lists(_AMF, max_size=3))
_MESSAGE = st.one_of(
    _COMMAND.map(lambda c: (20, CommandMessage(c[0], c[1], c[2], tuple(c[3])).serialize())),
    st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 8, 9, 15, 17, 18, 22, 99]),
              st.binary(max_size=40)))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_MESSAGE, st.sampled_from([2, 3, 5, 8]), st.integers(0, 3)),
                max_size=12), st.integers(1, 300))
def test_well_framed_hostile_answers_never_raise(
        messages: list[tuple[tuple[int, bytes], int, int]], chunk_size: int) -> None:
    """Valid chunks carrying arbitrary commands and control messages: the session ends up
    publishing, waiting, or failed with RemoteProtocolError, and never raises."""
    c, srv = client(), FakeServer()
    srv.shake(c)
    srv.writer.chunk_size = chunk_size
    c.receive_data(srv.message(1, SetChunkSize(chunk_size).serialize(), csid=2))
    for (type_id, payload), csid, msid in messages:
        c.receive_data(srv.writer.write(csid, type_id, msid, 0, payload))
        c.data_to_send()
    assert c.error is None or isinstance(c.error, RemoteProtocolError)
    assert c.state is not ClientState.HANDSHAKE
