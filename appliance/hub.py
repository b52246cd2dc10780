"""Media fan-out: one :class:`Publisher` per live stream, one :class:`Reader` per consumer.

``Publisher.publish`` never awaits. Each reader owns a bounded deque; when a reader falls
behind by more than its capacity, its backlog is dropped and counted and it resumes at the next
video keyframe (MediaMTX ``Reader.push``), so a slow consumer never stalls ingest. A new reader
is primed with the current :class:`CodecConfig` and starts at a keyframe.

A consumer whose work per unit is a few microseconds of pure computation on the loop (the HLS
muxer) is a :class:`Sink` instead: called inline from ``publish``, with no queue and no task
wake-up per unit (docs/architecture.md "Ingest hot path": a task hop per unit cost ~30 loop
wake-ups per stream per second). A sink must not block and must not raise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from media.units import CodecConfig, MediaUnit, TrackKind

logger = logging.getLogger(__name__)

DEFAULT_READER_CAPACITY = 1024
"""Units a reader may lag behind: ~10 s of a 30 fps + AAC stream."""


@dataclass(frozen=True, slots=True)
class Discontinuity:
    """The publisher changed (reconnect): timestamps continue, the encoder state does not."""


HubItem = MediaUnit | CodecConfig | Discontinuity


class Sink(Protocol):
    """A synchronous consumer: called inline, in order, on the loop (see the module doc).

    Implementations catch their own errors: an exception escaping a sink would reach ingest.
    """

    def unit(self, unit: MediaUnit) -> None:
        """A media unit (the sink sees every unit; it skips to a keyframe itself if it must)."""

    def config(self, config: CodecConfig) -> None:
        """The codec configuration from here on (also given once when the sink is added)."""

    def discontinuity(self) -> None:
        """The publisher changed (see :class:`Discontinuity`)."""

    def close(self) -> None:
        """The publisher closed: no more calls follow."""


class Reader:
    """A consumer's bounded view of a publisher. Iterate with ``await reader.get()``."""

    def __init__(self, publisher: Publisher, name: str, capacity: int) -> None:
        self.name = name
        self._publisher = publisher
        self._queue: deque[HubItem] = deque()
        self._capacity = capacity
        self._wakeup = asyncio.Event()
        self._closed = False
        self._needs_keyframe = True
        self._recovering = False
        self.frames_discarded = 0
        self._last_warning = 0.0

    def _push(self, item: HubItem) -> None:
        if self._closed:
            return
        if isinstance(item, MediaUnit):
            if self._needs_keyframe:
                has_video = self._publisher.config.video is not None
                if item.kind is TrackKind.VIDEO and item.keyframe:
                    self._needs_keyframe = False
                    self._recovering = False
                elif has_video:
                    # A new reader's wait for its first keyframe is no loss; after an overflow
                    # every skipped frame is.
                    if self._recovering:
                        self.frames_discarded += 1
                    return
                else:
                    self._needs_keyframe = False  # audio-only: any frame starts
            if len(self._queue) >= self._capacity:
                self._overflow()
                self._push(item)
                return
        self._queue.append(item)
        self._wakeup.set()

    def _overflow(self) -> None:
        dropped = sum(1 for item in self._queue if isinstance(item, MediaUnit))
        self.frames_discarded += dropped
        self._queue.clear()
        self._queue.append(self._publisher.config)
        self._needs_keyframe = True
        self._recovering = True
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            logger.warning("reader %s fell behind: dropped %d frames (total %d)",
                           self.name, dropped, self.frames_discarded)

    async def get(self) -> HubItem | None:
        """Next item, or None once the publisher is closed and the backlog drained."""
        while not self._queue:
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    def get_nowait(self) -> HubItem | None:
        return self._queue.popleft() if self._queue else None

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving; ``get`` returns None after the backlog."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        self._publisher._reader_closed(self)


class Publisher:
    """The fan-out point of one live stream."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._readers: set[Reader] = set()
        # Snapshots iterated per unit (a reader or sink may leave while being called).
        self._reader_list: tuple[Reader, ...] = ()
        self._sinks: tuple[Sink, ...] = ()
        self.config = CodecConfig(None, None)
        self.units_published = 0
        self._discarded_by_closed = 0

    def add_reader(self, name: str, capacity: int = DEFAULT_READER_CAPACITY) -> Reader:
        reader = Reader(self, name, capacity)
        reader._push(self.config)
        self._readers.add(reader)
        self._reader_list = tuple(self._readers)
        return reader

    def add_sink(self, sink: Sink) -> None:
        """Call ``sink`` inline for everything published from now on (primed with the
        current config)."""
        sink.config(self.config)
        self._sinks = (*self._sinks, sink)

    def remove_sink(self, sink: Sink) -> None:
        """Stop calling ``sink`` (its ``close`` is not called)."""
        self._sinks = tuple(s for s in self._sinks if s is not sink)

    @property
    def readers(self) -> list[Reader]:
        return list(self._readers)

    @property
    def frames_discarded(self) -> int:
        """Frames dropped for slow readers since the publisher began: monotonic, because the
        losses of readers that have since closed (a viewer who left) stay counted."""
        return self._discarded_by_closed + sum(r.frames_discarded for r in self._readers)

    def _reader_closed(self, reader: Reader) -> None:
        if reader in self._readers:
            self._readers.discard(reader)
            self._reader_list = tuple(self._readers)
            self._discarded_by_closed += reader.frames_discarded

    def set_config(self, config: CodecConfig) -> None:
        self.config = config
        for sink in self._sinks:
            sink.config(config)
        for reader in self._reader_list:
            reader._push(config)

    def discontinuity(self) -> None:
        for sink in self._sinks:
            sink.discontinuity()
        for reader in self._reader_list:
            reader._push(Discontinuity())

    def publish(self, unit: MediaUnit) -> None:
        """Hand a unit to every sink and reader. Never blocks, never awaits."""
        self.units_published += 1
        for sink in self._sinks:
            sink.unit(unit)
        for reader in self._reader_list:
            reader._push(unit)

    def close(self) -> None:
        sinks, self._sinks = self._sinks, ()
        for sink in sinks:
            sink.close()
        for reader in self._reader_list:
            reader.close()
