"""RtmpServerSession command flow, state machine and failure handling (docs/threat-model.md
§rtmp)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from media.rtmp import amf0
from media.rtmp import chunk as chunk_module
from media.rtmp.errors import LocalProtocolError
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
    Connected,
    ConnectionClosed,
    ProtocolFailed,
    PublishRequested,
    RtmpServerSession,
    SessionState,
    StreamMetadata,
    Unpublished,
    VideoReceived,
    redact_stream_name,
)
from tests.media.rtmp.rtmp_factory import (
    C1,
    ClientWriter,
    SessionDriver,
    commands,
    connect_command,
    decode_server_bytes,
    feed_all_ways,
    handshake,
)


@pytest.fixture(autouse=True, params=["c", "python"])
def chunk_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every session test runs with the C chunk reader and with the Python one (the
    fallback where no compiler was at install; rtmp.native_chunk_reader = false)."""
    if request.param == "python":
        monkeypatch.setattr(chunk_module, "NATIVE_CHUNK_READER", None)
    elif chunk_module.NATIVE_CHUNK_READER is None:
        pytest.skip("the C chunk reader is not built here")
    return str(request.param)


def status_codes(driver: SessionDriver) -> list[tuple[int, str, str]]:
    out = []
    for reply in driver.replies():
        msg = reply.message
        if isinstance(msg, CommandMessage) and msg.command_name == "onStatus":
            info = msg.arguments[0]
            assert isinstance(info, dict)
            out.append((reply.raw.message_stream_id, str(info["level"]), str(info["code"])))
    return out


def only_failure(events: Sequence[object]) -> str:
    (event,) = [e for e in events if isinstance(e, ProtocolFailed)]
    assert isinstance(event, ProtocolFailed)
    return str(event.error)


def test_handshake_replies_s0_s1_s2() -> None:
    """§5.2.5: S0 is version 3, S1 has a zero field, S2 echoes C1."""
    session = RtmpServerSession()
    session.receive_data(b"\x03" + C1)
    out = session.data_to_send()
    assert len(out) == 1 + 2 * HANDSHAKE_SIZE
    assert out[0] == 3 and out[5:9] == bytes(4)
    assert out[1 + HANDSHAKE_SIZE :] == C1
    assert session.state.name == "HANDSHAKE"
    session.receive_data(bytes(HANDSHAKE_SIZE))
    assert session.state.name == "CONNECTING"


def test_bad_version_byte() -> None:
    """docs/threat-model.md §rtmp: a C0 other than 3 is a protocol error (6 = RTMPE)."""
    session = RtmpServerSession()
    session.receive_data(b"\x06" + bytes(100))
    assert only_failure(session.events()) == "unsupported RTMP version 6 in C0 (expected 3)"
    assert session.state is SessionState.ERROR
    session.receive_data(b"more")  # ignored, never raises
    assert session.events() == []


class _SessionFeed:
    def __init__(self) -> None:
        self.session = RtmpServerSession()

    def feed(self, data: bytes) -> list[object]:
        self.session.receive_data(data)
        return list(self.session.events())


def test_connect_all_ways() -> None:
    """Handshake + connect produce one Connected event however the bytes are split."""
    name, txid, obj = connect_command("live")
    data = handshake() + ClientWriter().command(0, name, txid, obj)
    expected = [Connected("live", "rtmp://127.0.0.1/live", "FMLE/3.0 (compatible; FMSc/1.0)")]
    feed_all_ways(_SessionFeed, data, expected)


def test_connect_replies() -> None:
    """§7.2.1.1: WindowAckSize, SetPeerBandwidth, SetChunkSize, then _result Success."""
    driver = SessionDriver(out_chunk_size=4096, window_ack_size=2_500_000)
    events = driver.connect()
    assert events == [Connected("live", "rtmp://127.0.0.1/live", "FMLE/3.0 (compatible; FMSc/1.0)")]
    replies = [r.message for r in driver.replies()]
    assert replies[:3] == [
        WindowAcknowledgementSize(2_500_000),
        SetPeerBandwidth(2_500_000, 2),
        SetChunkSize(4096),
    ]
    result = replies[3]
    assert isinstance(result, CommandMessage)
    assert (result.command_name, result.transaction_id) == ("_result", 1.0)
    assert isinstance(result.command_object, dict) and "fmsVer" in result.command_object
    info = result.arguments[0]
    assert isinstance(info, dict)
    assert info["code"] == "NetConnection.Connect.Success"
    assert info["objectEncoding"] == 0.0
    assert driver.session.state is SessionState.CONNECTED


def test_full_obs_like_flow() -> None:
    """OBS/FFmpeg: releaseStream, FCPublish, createStream, publish, media, FCUnpublish."""
    driver = SessionDriver()
    c = driver.client
    driver.connect()
    driver.replies()
    driver.send(c.set_chunk_size(4096))
    c2 = driver.client
    driver.send(c2.command(0, "releaseStream", 2.0, None, "testkey"))
    driver.send(c2.command(0, "FCPublish", 3.0, None, "testkey"))
    names = [m.command_name for m in commands(driver.replies())]
    assert names == ["_result", "_result", "onFCPublish"]
    msid = driver.create_stream()
    assert msid == 1
    events = driver.send(c.command(msid, "publish", 5.0, None, "testkey", "live"))
    assert events == [PublishRequested(1, "testkey", "live")]
    assert driver.session.data_to_send() == b""  # waiting for the application
    driver.session.accept_publish(1)
    assert driver.session.state is SessionState.PUBLISHING
    replies = driver.replies()
    begin = replies[0].message
    assert begin == UserControl(UserControlEventType.STREAM_BEGIN, b"\x00\x00\x00\x01")
    assert (replies[1].raw.message_stream_id, replies[1].message.command_name) == (  # type: ignore[union-attr]
        1,
        "onStatus",
    )

    meta = amf0.EcmaArray(width=320.0, height=240.0, videocodecid=7.0)
    events = driver.send(c.data(1, "@setDataFrame", "onMetaData", meta))
    assert events == [StreamMetadata(1, {"width": 320.0, "height": 240.0, "videocodecid": 7.0})]
    big_frame = bytes(10_000)
    events = driver.send(
        c.video(1, 0, b"\x17\x00\x00\x00\x00cfg") + c.audio(1, 0, b"\xaf\x00\x12\x10")
    )
    events += driver.send(c.video(1, 40, b"\x17\x01\x00\x00\x00" + big_frame))
    assert events == [
        VideoReceived(1, 0, b"\x17\x00\x00\x00\x00cfg"),
        AudioReceived(1, 0, b"\xaf\x00\x12\x10"),
        VideoReceived(1, 40, b"\x17\x01\x00\x00\x00" + big_frame),
    ]
    events = driver.send(c.command(0, "FCUnpublish", 6.0, None, "testkey"))
    events += driver.send(c.command(0, "deleteStream", 7.0, None, 1.0))
    assert events == [Unpublished(1)]
    assert driver.session.state.name == "CONNECTED"
    assert driver.send(b"") == [ConnectionClosed()]
    assert driver.session.state.name == "CLOSED"


def test_reject_publish() -> None:
    """reject_publish sends onStatus level=error with the code, then CLOSING."""
    driver = SessionDriver()
    events = driver.publish("bad")
    assert events == [PublishRequested(1, "bad", "live")]
    driver.session.reject_publish(1, "NetStream.Publish.BadName", "no such key")
    assert status_codes(driver) == [(1, "error", "NetStream.Publish.BadName")]
    assert driver.session.state is SessionState.CLOSING
    assert driver.send(driver.client.video(1, 0, b"\x17")) == []  # ignored after goodbye
    assert driver.send(b"") == [ConnectionClosed()]


def test_close_while_publishing() -> None:
    """close() sends onStatus (e.g. a takeover) and moves to CLOSING."""
    driver = SessionDriver()
    driver.publish()
    driver.session.accept_publish(1)
    driver.replies()
    driver.session.close("NetStream.Unpublish.Success", "taken over")
    assert status_codes(driver) == [(1, "status", "NetStream.Unpublish.Success")]
    assert driver.session.state is SessionState.CLOSING


def test_accept_without_pending_publish_is_local_error() -> None:
    driver = SessionDriver()
    driver.connect()
    with pytest.raises(LocalProtocolError):
        driver.session.accept_publish(1)


def test_play_is_refused() -> None:
    """An ingest server refuses play with NetStream.Play.Failed."""
    driver = SessionDriver()
    driver.connect()
    driver.replies()
    msid = driver.create_stream()
    driver.send(driver.client.command(msid, "play", 5.0, None, "x"))
    assert status_codes(driver) == [(1, "error", "NetStream.Play.Failed")]
    assert driver.session.state is SessionState.CLOSING


def test_publish_before_connect() -> None:
    """docs/threat-model.md §rtmp: publish before connect is a protocol error."""
    driver = SessionDriver()
    driver.send(handshake())
    events = driver.send(driver.client.command(0, "publish", 1.0, None, "key"))
    assert only_failure(events) == "command 'publish' before connect"
    assert driver.session.state is SessionState.ERROR


def test_publish_before_create_stream() -> None:
    """docs/threat-model.md §rtmp: publish on stream 0 is refused with an onStatus hint."""
    driver = SessionDriver()
    driver.connect()
    driver.replies()
    events = driver.send(driver.client.command(0, "publish", 2.0, None, "key"))
    assert only_failure(events) == "publish on message stream 0 (createStream first)"
    assert status_codes(driver) == [(0, "error", "NetStream.Publish.BadConnection")]


def test_publish_twice() -> None:
    """docs/threat-model.md §rtmp: one publish per connection."""
    driver = SessionDriver()
    driver.publish()
    driver.session.accept_publish(1)
    events = driver.send(driver.client.command(1, "publish", 6.0, None, "again", "live"))
    assert only_failure(events) == "only one publish per connection"


def test_unknown_message_stream_id() -> None:
    """docs/threat-model.md §rtmp: commands on a message stream never created are errors."""
    driver = SessionDriver()
    driver.connect()
    events = driver.send(driver.client.command(7, "publish", 2.0, None, "key"))
    assert only_failure(events) == "command 'publish' on unknown message stream id 7"


def test_publish_name_wrong_type() -> None:
    """docs/threat-model.md §rtmp: streamName=false is rejected with BadName, not a crash."""
    driver = SessionDriver()
    driver.connect()
    driver.replies()
    msid = driver.create_stream()
    events = driver.send(driver.client.command(msid, "publish", 5.0, None, False))
    assert only_failure(events) == "publish stream name must be a string"
    assert status_codes(driver) == [(1, "error", "NetStream.Publish.BadName")]


def test_too_many_create_stream() -> None:
    """docs/threat-model.md §rtmp: at most max_message_streams streams per connection."""
    driver = SessionDriver(max_message_streams=8)
    driver.connect()
    for _ in range(8):
        driver.create_stream()
    events = driver.send(driver.client.command(0, "createStream", 9.0, None))
    assert only_failure(events) == "too many message streams (limit 8)"


def test_delete_unknown_stream() -> None:
    driver = SessionDriver()
    driver.connect()
    events = driver.send(driver.client.command(0, "deleteStream", 9.0, None, 3.0))
    assert only_failure(events) == "deleteStream of unknown message stream id 3.0"


def test_delete_stream_by_name_ends_the_publish_without_echoing_the_key() -> None:
    """GStreamer's rtmp2sink sends deleteStream(streamName): the publish ends, no error, and
    the key appears nowhere (not in events, errors or replies)."""
    driver = SessionDriver()
    driver.publish("hk_secret_key")
    driver.session.accept_publish(1)
    driver.replies()
    events = driver.send(driver.client.command(0, "deleteStream", 7.0, None, "hk_secret_key"))
    assert events == [Unpublished(1)]
    assert driver.session.error is None
    assert b"hk_secret_key" not in driver.session.data_to_send()


def test_delete_stream_with_a_bad_argument_names_only_its_type() -> None:
    driver = SessionDriver()
    driver.connect()
    events = driver.send(driver.client.command(0, "deleteStream", 9.0, None, True))
    assert only_failure(events) == "deleteStream of unknown message stream id bool"


def test_connect_without_app() -> None:
    driver = SessionDriver()
    driver.send(handshake())
    events = driver.send(driver.client.command(0, "connect", 1.0, {"tcUrl": "x"}))
    assert only_failure(events) == "connect has no app name"


def test_media_on_non_publishing_stream_is_ignored() -> None:
    """Audio/video outside the publishing stream is counted and dropped."""
    driver = SessionDriver()
    driver.connect()
    assert driver.send(driver.client.video(1, 0, b"\x17\x01")) == []
    assert driver.session.ignored_media_messages == 1


def test_media_right_after_publish_is_not_lost() -> None:
    """Sequence headers sent in the same read as ``publish`` reach the application in order."""
    driver = SessionDriver()
    driver.connect()
    msid = driver.create_stream()
    c = driver.client
    events = driver.send(c.command(msid, "publish", 5.0, None, "testkey", "live")
                         + c.video(msid, 0, b"\x17\x00\x00\x00\x00cfg"))
    # Parsing holds while the decision is pending; accepting resumes it.
    assert events == [PublishRequested(msid, "testkey", "live")]
    assert driver.session.awaiting_decision
    assert driver.session.accept_publish(msid) is True
    assert driver.session.events() == [VideoReceived(msid, 0, b"\x17\x00\x00\x00\x00cfg")]
    assert driver.session.ignored_media_messages == 0


def test_media_sink_takes_the_publish_media_in_order_until_it_ends() -> None:
    """After ``set_media_sink`` the publish's media goes to the sink as parsed, in order and
    byte for byte, and no media event is queued; media parsed before it stays an event; the
    sink ends with the publish (FCUnpublish/deleteStream), and media afterwards is dropped."""
    driver = SessionDriver()
    driver.connect()
    msid = driver.create_stream()
    c = driver.client
    driver.send(c.command(msid, "publish", 5.0, None, "testkey", "live")
                + c.video(msid, 0, b"\x17\x00\x00\x00\x00cfg"))
    assert driver.session.accept_publish(msid)
    got: list[tuple[int, bytes, bool]] = []
    driver.session.set_media_sink(lambda ts, body, video: got.append((ts, body, video)))
    assert driver.session.events() == [VideoReceived(msid, 0, b"\x17\x00\x00\x00\x00cfg")]
    big = b"\x17\x01\x00\x00\x00" + bytes(range(256)) * 40  # spans several chunks
    meta = amf0.EcmaArray(encoder="obs")
    events = driver.send(c.audio(msid, 0, b"\xaf\x00\x12\x10") + c.video(msid, 40, big)
                         + c.data(msid, "@setDataFrame", "onMetaData", meta)
                         + c.audio(msid, 21, b"\xaf\x01zz"))
    assert events == [StreamMetadata(msid, {"encoder": "obs"})]
    assert got == [(0, b"\xaf\x00\x12\x10", False), (40, big, True), (21, b"\xaf\x01zz", False)]
    events = driver.send(c.command(0, "FCUnpublish", 6.0, None, "testkey")
                         + c.video(msid, 80, b"\x17\x01late"))
    assert events == [Unpublished(msid)]
    assert len(got) == 3 and driver.session.ignored_media_messages == 1


def test_media_sink_needs_an_accepted_publish_and_ends_with_close() -> None:
    driver = SessionDriver()
    driver.publish()
    with pytest.raises(LocalProtocolError):
        driver.session.set_media_sink(lambda ts, body, video: None)  # still pending
    driver.session.accept_publish(1)
    got: list[int] = []
    driver.session.set_media_sink(lambda ts, body, video: got.append(ts))
    driver.send(driver.client.video(1, 5, b"\x27\x01x"))
    driver.session.close("NetStream.Unpublish.Success", "taken over")
    assert driver.send(driver.client.video(1, 6, b"\x27\x01y")) == []
    assert got == [5]


def test_a_failing_media_sink_fails_the_session_not_the_server() -> None:
    """A sink that raises is a bug: logged, and the session fails like on any internal
    parsing error (the connection is dropped, nothing propagates to the event loop)."""
    driver = SessionDriver()
    driver.publish()
    driver.session.accept_publish(1)

    def sink(ts: int, body: bytes, video: bool) -> None:
        raise ValueError("bug")

    driver.session.set_media_sink(sink)
    events = driver.send(driver.client.video(1, 0, b"\x17\x01x"))
    assert "internal error" in only_failure(events)
    assert driver.session.state is SessionState.ERROR


def test_nothing_overtakes_a_pending_publish_decision() -> None:
    """Bytes after ``publish`` (deleteStream, media) wait for the decision: a delayed refusal
    still finds its publish pending and is sent (the wrong-key + deleteStream race)."""
    driver = SessionDriver()
    driver.connect()
    msid = driver.create_stream()
    c = driver.client
    events = driver.send(c.command(msid, "publish", 5.0, None, "wrong", "live")
                         + c.command(0, "deleteStream", 6.0, None, float(msid)))
    assert events == [PublishRequested(msid, "wrong", "live")]
    driver.replies()
    driver.session.reject_publish(msid, "NetStream.Publish.BadName", "invalid stream key")
    assert driver.session.state is SessionState.CLOSING
    assert b"NetStream.Publish.BadName" in driver.session.data_to_send()


def test_late_decisions_after_withdrawal_are_noops_or_definitive() -> None:
    """A decision about a publish the peer withdrew: accept is a no-op (False), reject still
    sends the definitive error and closes; neither raises."""
    for decide in ("accept", "reject"):
        driver = SessionDriver()
        driver.connect()
        msid = driver.create_stream()
        c = driver.client
        driver.send(c.command(msid, "publish", 5.0, None, "k", "live"))
        driver.session._pending_publish = None  # as if withdrawn before the decision
        driver.replies()
        if decide == "accept":
            assert driver.session.accept_publish(msid) is False
            assert driver.session.state is SessionState.CONNECTED
        else:
            driver.session.reject_publish(msid, "NetStream.Publish.BadName", "bad key")
            assert driver.session.state is SessionState.CLOSING
            assert b"NetStream.Publish.BadName" in driver.session.data_to_send()


def test_decisions_after_eof_are_noops() -> None:
    driver = SessionDriver()
    driver.connect()
    msid = driver.create_stream()
    driver.send(driver.client.command(msid, "publish", 5.0, None, "k", "live"))
    driver.session.receive_data(b"")
    assert driver.session.accept_publish(msid) is False
    driver.session.reject_publish(msid, "NetStream.Publish.BadName", "x")
    assert driver.session.state is SessionState.CLOSED


def test_chunk_allowance_holds_and_resumes_parsing() -> None:
    """With the allowance used up, input stays buffered until resumed (CPU budget)."""
    driver = SessionDriver()
    driver.connect()
    driver.replies()
    session = driver.session
    pings = b"".join(
        driver.client.message(2, 4, 0, UserControl(UserControlEventType.PING_REQUEST,
                                                   i.to_bytes(4, "big")).serialize())
        for i in range(10))
    session.set_chunk_allowance(3)
    session.receive_data(pings)
    assert session.held_by_allowance
    assert session.buffered_bytes > 0
    first = session.data_to_send()
    session.set_chunk_allowance(None)
    session.resume_parsing()
    assert not session.held_by_allowance and session.buffered_bytes == 0
    assert len(session.data_to_send()) == 7 * len(first) // 3
    assert session.chunks_received >= session.messages_received >= 10


def test_small_message_cap_until_publish_is_accepted() -> None:
    """Before the publish is accepted, any message over the pre-publish cap is refused."""
    driver = SessionDriver()
    driver.connect()
    c = driver.client
    events = driver.send(c.video(1, 0, bytes(70_000)))
    assert "exceeds the 65536-byte limit" in only_failure(events)


def test_ping_request_gets_ping_response() -> None:
    """§7.1.7: PingRequest is answered with PingResponse carrying the same timestamp."""
    driver = SessionDriver()
    driver.connect()
    driver.replies()
    ping = UserControl(UserControlEventType.PING_REQUEST, b"\x00\x00\x12\x34")
    driver.send(driver.client.message(2, 4, 0, ping.serialize()))
    assert [r.message for r in driver.replies()] == [
        UserControl(UserControlEventType.PING_RESPONSE, b"\x00\x00\x12\x34")
    ]


def test_acknowledgement_after_window() -> None:
    """§5.4.3: acknowledge once the peer's window of bytes has been received."""
    driver = SessionDriver()
    driver.publish()
    driver.session.accept_publish(1)
    driver.send(driver.client.message(2, 5, 0, WindowAcknowledgementSize(5000).serialize()))
    driver.replies()
    driver.send(driver.client.video(1, 0, bytes(6000)))
    acks = [r.message for r in driver.replies() if isinstance(r.message, Acknowledgement)]
    assert acks == [Acknowledgement(driver.session.bytes_received)]


def test_checkbw_and_get_stream_length_are_harmless() -> None:
    driver = SessionDriver()
    driver.connect()
    driver.replies()
    driver.send(driver.client.command(0, "_checkbw", 2.0, None))
    driver.send(driver.client.command(0, "getStreamLength", 3.0, None, "x"))
    assert [m.command_name for m in commands(driver.replies())] == ["_result", "_result"]
    assert driver.session.state is SessionState.CONNECTED


def test_eof_in_error_state_reports_closed_once() -> None:
    session = RtmpServerSession()
    session.receive_data(b"\x05")
    session.receive_data(b"")
    session.receive_data(b"")
    events = session.events()
    assert isinstance(events[0], ProtocolFailed)
    assert events[1:] == [ConnectionClosed()]


def test_publish_requested_repr_redacts_key() -> None:
    """Stream names are secret keys; their repr/log form is redacted."""
    event = PublishRequested(1, "supersecret", "live")
    assert "supersecret" not in repr(event)
    assert "supersecret" not in redact_stream_name("supersecret")


def test_reply_bytes_use_out_chunk_size() -> None:
    """Replies after our SetChunkSize are chunked with out_chunk_size."""
    session = RtmpServerSession(out_chunk_size=64)
    session.receive_data(handshake())
    session.data_to_send()
    name, txid, obj = connect_command()
    session.receive_data(ClientWriter().command(0, name, txid, obj))
    replies = decode_server_bytes(session.data_to_send())
    assert replies[2].message == SetChunkSize(64)
