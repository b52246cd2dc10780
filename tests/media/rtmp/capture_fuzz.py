"""The RTMP session fuzz property, shared by the hypothesis test and scripts/fuzz_rtmp.py.

The seed is a real ffmpeg publish captured by scripts/capture_rtmp.py
(tests/data/ffmpeg_publish.bin): handshake, connect, createStream, publish, metadata, AVC and
AAC sequence headers, a second of media, FCUnpublish and deleteStream.
"""

from __future__ import annotations

import random
from pathlib import Path

from media.aac import AacError, parse_asc
from media.h264 import H264Error, parse_avcc
from media.rtmp.errors import RtmpError
from media.rtmp.flv import parse_audio_tag, parse_video_tag
from media.rtmp.session import (
    AudioReceived,
    ProtocolFailed,
    PublishRequested,
    RtmpServerSession,
    SessionState,
    VideoReceived,
)

CAPTURE = (Path(__file__).resolve().parents[2] / "data" / "ffmpeg_publish.bin").read_bytes()


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random structural mutation: splice, flip, duplicate, delete or truncate."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(out) + 1)
        kind = rng.randrange(5)
        if kind == 0:
            out[pos:pos] = rng.randbytes(rng.randint(1, 32))
        elif kind == 1 and out:
            i = min(pos, len(out) - 1)
            out[i] ^= 1 << rng.randrange(8)
        elif kind == 2:
            n = rng.randint(1, 256)
            out[pos:pos] = out[pos:pos + n]
        elif kind == 3:
            del out[pos:pos + rng.randint(1, 64)]
        else:
            del out[pos:]
    return bytes(out)


def check_session(data: bytes, splits: list[int], accept: bool) -> RtmpServerSession:
    """Feed ``data`` in pieces; decide publishes; the session must never raise, report no
    internal error, keep buffered memory within what it was given, and hand valid-looking
    media only after an accepted publish."""
    session = RtmpServerSession()
    pieces, last = [], 0
    for cut in sorted(s % (len(data) + 1) for s in splits):
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    accepted = False
    for piece in pieces:
        if not piece:
            continue
        session.receive_data(piece)
        assert session.buffered_bytes <= len(data)
        for _ in range(4):  # a decision resumes parsing, which may queue more events
            events = session.events()
            if not events:
                break
            for event in events:
                if isinstance(event, PublishRequested):
                    if accept:
                        accepted = session.accept_publish(event.message_stream_id)
                    else:
                        session.reject_publish(event.message_stream_id,
                                               "NetStream.Publish.BadName", "no")
                elif isinstance(event, VideoReceived | AudioReceived):
                    assert accepted, "media before an accepted publish"
                    check_media(event)
                elif isinstance(event, ProtocolFailed):
                    assert "internal error" not in str(event.error)
                    assert session.state is SessionState.ERROR
        session.data_to_send()
    session.receive_data(b"")
    session.events()
    return session


def check_media(event: VideoReceived | AudioReceived) -> None:
    """Tag and codec-config parsers raise only their own error types."""
    try:
        if isinstance(event, VideoReceived):
            tag = parse_video_tag(event.body)
            if tag.packet_type.name == "SEQUENCE_HEADER":
                try:
                    parse_avcc(tag.data)
                except H264Error:
                    pass
        else:
            audio = parse_audio_tag(event.body)
            if audio.aac_packet_type == 0:
                try:
                    parse_asc(audio.data)
                except AacError:
                    pass
    except RtmpError:
        pass
