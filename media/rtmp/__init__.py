"""RTMP ingest: a sans-I/O server session plus a thin asyncio adapter.

Typical use::

    server = await start_rtmp_server("0.0.0.0", 1935, MyHandler())

where ``MyHandler.events_received`` answers :class:`PublishRequested` with
``conn.session.accept_publish(...)`` or ``reject_publish(...)`` and feeds
:class:`VideoReceived`/:class:`AudioReceived` bodies to :func:`parse_video_tag` /
:func:`parse_audio_tag`.
"""

from __future__ import annotations

from .errors import LocalProtocolError, RemoteProtocolError, RtmpError
from .flv import (
    AudioTag,
    FlvParseError,
    VideoFrameType,
    VideoPacketType,
    VideoTag,
    parse_audio_tag,
    parse_video_tag,
)
from .server import RtmpConnection, RtmpHandler, start_rtmp_server
from .session import (
    AudioReceived,
    Connected,
    ConnectionClosed,
    ProtocolFailed,
    PublishRequested,
    RtmpEvent,
    RtmpServerSession,
    SessionState,
    StreamMetadata,
    Unpublished,
    VideoReceived,
    redact_stream_name,
)

__all__ = [
    "AudioReceived",
    "AudioTag",
    "Connected",
    "ConnectionClosed",
    "FlvParseError",
    "LocalProtocolError",
    "ProtocolFailed",
    "PublishRequested",
    "RemoteProtocolError",
    "RtmpConnection",
    "RtmpError",
    "RtmpEvent",
    "RtmpHandler",
    "RtmpServerSession",
    "SessionState",
    "StreamMetadata",
    "Unpublished",
    "VideoFrameType",
    "VideoPacketType",
    "VideoReceived",
    "VideoTag",
    "parse_audio_tag",
    "parse_video_tag",
    "redact_stream_name",
    "start_rtmp_server",
]
