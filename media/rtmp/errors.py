"""Exceptions raised by the RTMP protocol library.

Mirrors h11: :class:`LocalProtocolError` means *our caller* misused the API,
:class:`RemoteProtocolError` means *the peer* sent something we cannot accept. Parse
helpers raise subclasses of both :class:`RtmpError` and :class:`ValueError` (the PyAV
dual-inheritance trick), so generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "RemoteProtocolError", "RtmpError"]


class RtmpError(Exception):
    """Base class of every exception raised by :mod:`media.rtmp`."""


class LocalProtocolError(RtmpError):
    """The caller used the API in a way the protocol state does not allow."""


class RemoteProtocolError(RtmpError, ValueError):
    """The peer violated the protocol or exceeded a limit.

    Attributes:
        on_status_hint: the ``onStatus``/``_error`` code that best describes the failure to
            the peer (e.g. ``"NetStream.Publish.BadName"``), or ``None`` when the connection
            should simply be dropped (h11's ``error_status_hint``).
    """

    def __init__(self, message: str, *, on_status_hint: str | None = None) -> None:
        super().__init__(message)
        self.on_status_hint = on_status_hint
