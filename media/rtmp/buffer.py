"""Generator-based byte reader (the python-websockets ``StreamReader`` pattern).

Parsers are generators that ``yield from reader.read_exact(n)``; each bare ``yield`` means
"feed me more bytes". No I/O happens here: the owner calls :meth:`StreamReader.feed_data`
and then resumes the parser generator.
"""

from __future__ import annotations

from collections.abc import Generator

from .errors import LocalProtocolError

__all__ = ["StreamReader"]

# Compact the internal buffer once this many consumed bytes sit at its front; keeps reads
# O(n) overall instead of O(n^2) from deleting the front of a bytearray on every read.
_COMPACT_THRESHOLD = 64 * 1024


class StreamReader:
    """An in-memory byte queue read by generator-based parsers."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed by the parser."""
        return len(self._buffer) - self._pos

    @property
    def eof(self) -> bool:
        """True once :meth:`feed_eof` was called."""
        return self._eof

    def feed_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the peer.

        Raises:
            LocalProtocolError: if called after :meth:`feed_eof`.
        """
        if self._eof:
            raise LocalProtocolError("feed_data() called after feed_eof()")
        self._buffer += data

    def feed_eof(self) -> None:
        """Mark the end of the stream."""
        self._eof = True

    def discard(self) -> None:
        """Drop everything buffered (used once a session stops parsing)."""
        self._buffer.clear()
        self._pos = 0

    def read_exact(self, n: int) -> Generator[None, None, bytes]:
        """Read exactly ``n`` bytes, yielding until they are available.

        Raises:
            EOFError: if the stream ends before ``n`` bytes arrived.
        """
        if n < 0:
            raise LocalProtocolError(f"read_exact({n}): negative length")
        while len(self._buffer) - self._pos < n:
            if self._eof:
                raise EOFError(f"stream ended with {self.buffered} of {n} bytes")
            yield
        start = self._pos
        data = bytes(self._buffer[start : start + n])
        self.consume_to(start + n)
        return data

    def consume_to(self, pos: int) -> None:
        """Mark the buffered bytes before ``pos`` (an offset into the internal buffer, for
        parsers that read it in place) as read."""
        if pos >= _COMPACT_THRESHOLD or pos == len(self._buffer):
            del self._buffer[:pos]
            pos = 0
        self._pos = pos

    def at_eof(self) -> Generator[None, None, bool]:
        """Wait until data is available or the stream ended; return True on a clean end."""
        while self._pos == len(self._buffer):
            if self._eof:
                return True
            yield
        return False
