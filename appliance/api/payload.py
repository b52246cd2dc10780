"""A response body that is several byte strings sent in order, never joined.

A live segment is its parts (:meth:`media.hls.segmenter.HlsMuxer.chunks`): keeping a joined
copy of every segment doubled the memory a stream holds (issue 17), so the segment's response
writes the parts one after another instead.
"""

from __future__ import annotations

from typing import Any

from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter


class ChunksPayload(payload.Payload):
    """``chunks`` concatenated, written without a copy; reusable like a bytes body."""

    _value: tuple[bytes, ...]

    def __init__(self, chunks: tuple[bytes, ...], *args: Any, **kwargs: Any) -> None:
        super().__init__(chunks, *args, **kwargs)
        self._total = sum(len(c) for c in chunks)
        self._size = self._total

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._value).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"".join(self._value)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        left = self._total if content_length is None else content_length
        for chunk in self._value:
            if left <= 0:
                break
            await writer.write(chunk if len(chunk) <= left else chunk[:left])
            left -= len(chunk)
