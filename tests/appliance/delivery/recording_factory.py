"""Build real recordings for the delivery tests: synthetic H.264/AAC → HlsMuxer → Recorder."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import threading
from pathlib import Path

from appliance.delivery.recorder import DiskWriter, Recorder
from appliance.delivery.storage import Data, Storage
from media.hls.segmenter import HlsMuxer
from media.units import CLOCK_RATE, MediaUnit
from tests.media.hls.media_factory import SyntheticStream, make_stream


class FailingStorage(Storage):
    """Disk full after ``ok_writes`` atomic writes (the storage seam's fake)."""

    def __init__(self, ok_writes: int, err: int = errno.ENOSPC) -> None:
        self.ok_writes = ok_writes
        self.err = err
        self.writes = 0

    def write_atomic(self, path: Path, data: Data) -> None:
        if path.name.startswith(("seg-", "init-")):
            self.writes += 1
            if self.writes > self.ok_writes:
                raise OSError(self.err, "No space left on device")
        super().write_atomic(path, data)


class StallingStorage(Storage):
    """A disk that blocks every segment write until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def write_atomic(self, path: Path, data: Data) -> None:
        if path.name.startswith("seg-"):
            self.release.wait(30)
        super().write_atomic(path, data)


def shifted(stream: SyntheticStream, offset_s: float) -> list[MediaUnit]:
    off = round(offset_s * CLOCK_RATE)
    return [dataclasses.replace(u, dts=u.dts + off, pts=u.pts + off, arrival=u.arrival + offset_s)
            for u in stream.units]


def publish(muxer: HlsMuxer, stream: SyntheticStream, offset_s: float = 0.0) -> None:
    muxer.set_config(stream.video, stream.audio)
    for unit in shifted(stream, offset_s):
        muxer.push(unit)


async def drain(writer: DiskWriter) -> None:
    """Wait for every queued write, then for the loop callbacks they scheduled."""
    await writer.run(lambda: None)
    for _ in range(3):
        await asyncio.sleep(0)


async def record(directory: Path, sessions: list[float], *, storage: Storage | None = None,
                 seconds: float = 4.0, broadcast_id: str = "b1",
                 end: bool = True) -> tuple[Recorder, DiskWriter, HlsMuxer]:
    """Publish ``len(sessions)`` sessions (at the given timeline offsets, reconnects between
    them) through a live muxer with a recorder attached."""
    writer = DiskWriter()
    rec = await Recorder.start(broadcast_id, directory / broadcast_id, storage or Storage(),
                               writer)
    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=3)
    muxer.sink = rec
    stream = make_stream(seconds)
    for i, offset in enumerate(sessions):
        if i:
            muxer.mark_discontinuity()
        publish(muxer, stream, offset)
    if end:
        muxer.end()
    await drain(writer)
    return rec, writer, muxer
