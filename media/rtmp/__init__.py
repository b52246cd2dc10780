"""RTMP ingest: a sans-I/O server session plus a thin asyncio adapter.

Typical use::

    server = await start_rtmp_server("0.0.0.0", 1935, MyHandler())

where ``MyHandler.events_received`` answers :class:`PublishRequested` with
``conn.session.accept_publish(...)`` or ``reject_publish(...)`` and feeds
:class:`VideoReceived`/:class:`AudioReceived` bodies to :func:`parse_video_tag` /
:func:`parse_audio_tag`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .client import (
    ClientState,
    PublishFailed,
    PublishStarted,
    RtmpClientEvent,
    RtmpClientSession,
    ServerClosed,
)
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
from .url import RtmpUrl, RtmpUrlError, parse_rtmp_url

if TYPE_CHECKING:
    from .server import RtmpConnection, RtmpHandler, start_rtmp_server

# The asyncio adapter is imported lazily (PEP 562) so that importing any sans-I/O module of
# this package (``media.rtmp.session`` runs this file first) never loads asyncio.
_LAZY_SERVER_NAMES = frozenset({"RtmpConnection", "RtmpHandler", "start_rtmp_server"})


def __getattr__(name: str) -> object:
    if name in _LAZY_SERVER_NAMES:
        return getattr(importlib.import_module(".server", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AudioReceived",
    "AudioTag",
    "ClientState",
    "Connected",
    "ConnectionClosed",
    "FlvParseError",
    "LocalProtocolError",
    "ProtocolFailed",
    "PublishFailed",
    "PublishRequested",
    "PublishStarted",
    "RemoteProtocolError",
    "RtmpClientEvent",
    "RtmpClientSession",
    "RtmpConnection",
    "RtmpError",
    "RtmpEvent",
    "RtmpHandler",
    "RtmpServerSession",
    "RtmpUrl",
    "RtmpUrlError",
    "ServerClosed",
    "SessionState",
    "StreamMetadata",
    "Unpublished",
    "VideoFrameType",
    "VideoPacketType",
    "VideoReceived",
    "VideoTag",
    "parse_audio_tag",
    "parse_rtmp_url",
    "parse_video_tag",
    "redact_stream_name",
    "start_rtmp_server",
]
