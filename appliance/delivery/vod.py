"""A recording as HLS VOD (RFC 8216 §6.2.1) and as one MP4 file (PyAV remux, off the loop).

:func:`render_vod_playlist` is pure. :func:`remux_to_mp4` blocks (PyAV) and must run in a
worker; :class:`Downloads` caches the result on disk next to the recording and bounds how
many remuxes run at once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from appliance.delivery.index import DOWNLOAD, IndexEntry, Recording
from appliance.delivery.storage import TMP_SUFFIX

logger = logging.getLogger(__name__)

VOD_VERSION = 7
"""RFC 8216 §7: EXT-X-MAP in a media playlist without EXT-X-I-FRAMES-ONLY needs version ≥ 6."""


def vod_target_duration(durations: Sequence[float]) -> int:
    """RFC 8216 §4.3.3.1: every EXTINF, rounded to the nearest integer, is ≤ the target.

    We use the ceiling (never smaller than the rounding) so that strict players (Safari's
    mediastreamvalidator) never see a segment longer than the target.
    """
    longest = max(durations, default=1.0)
    return max(1, math.ceil(round(longest, 3)))


def render_vod_playlist(entries: Sequence[IndexEntry], *, complete: bool = True) -> str:
    """The recording as a complete VOD media playlist (an EVENT one while still recording).

    EXT-X-PLAYLIST-TYPE:VOD and EXT-X-ENDLIST (RFC 8216 §4.3.3.5, §4.3.3.4) make players treat
    it as seekable from the first load; EXT-X-MAP is repeated whenever the init changes
    (§4.3.2.5), and EXT-X-DISCONTINUITY precedes the first segment after a reconnect or codec
    change (§4.3.2.3). While the broadcast runs, ``complete=False`` renders an EVENT playlist
    (§4.3.3.5: segments are only appended) without ENDLIST, so the recording can be watched
    from the start while the end keeps growing.
    """
    target = vod_target_duration([e.duration for e in entries])
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VOD_VERSION}", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-DISCONTINUITY-SEQUENCE:0",
             f"#EXT-X-PLAYLIST-TYPE:{'VOD' if complete else 'EVENT'}"]
    if all(e.independent for e in entries):
        # §4.3.5.1: only when every segment starts with a keyframe (a forced cut in a GOP
        # longer than the target does not).
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    current_init: str | None = None
    for i, e in enumerate(entries):
        if i > 0 and (e.discontinuity or e.init != current_init):
            lines.append("#EXT-X-DISCONTINUITY")
        if e.init != current_init:
            lines.append(f'#EXT-X-MAP:URI="{e.init}"')
            current_init = e.init
        lines.append(f"#EXTINF:{e.duration:.5f},")
        lines.append(e.seg)
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class _Concat(io.RawIOBase):
    """Several files read as one seekable byte stream (an init followed by its segments)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._sizes = [p.stat().st_size for p in self._paths]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._total = sum(self._sizes)
        self._pos = 0
        self._open: tuple[int, io.BufferedReader] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._total}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._total or not len(view):
            return 0
        i = max(j for j, s in enumerate(self._starts) if s <= self._pos)
        while self._sizes[i] == 0 and i + 1 < len(self._sizes):
            i += 1
        if self._open is None or self._open[0] != i:
            if self._open is not None:
                self._open[1].close()
            self._open = (i, open(self._paths[i], "rb"))  # closed in close()
        fh = self._open[1]
        fh.seek(self._pos - self._starts[i])
        n = fh.readinto(view[: min(len(view), self._starts[i] + self._sizes[i] - self._pos)])
        self._pos += n
        return n

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None
        super().close()


def _runs(recording: Recording) -> list[list[Path]]:
    """Runs of segments between discontinuities (or init changes), each [init, seg, …]."""
    runs: list[list[Path]] = []
    current = None
    for e in recording.entries:
        if e.init != current or e.discontinuity:
            runs.append([recording.directory / e.init])
            current = e.init
        runs[-1].append(recording.directory / e.seg)
    return runs


def remux_to_mp4(recording: Recording, out: Path) -> Path:
    """Write the recording as one MP4 (``moov`` first: ``movflags=faststart``) at ``out``.

    Blocking. Packets are copied, never transcoded. Each run after a discontinuity is shifted
    to start where the previous one ended, so the file has no holes where the publisher was
    gone. A later run's tracks are mapped by kind onto the first run's, and the MP4 keeps the
    first run's codec parameters: if a reconnect changed the resolution, the part after it
    may not decode in the MP4 (the HLS VOD, with one EXT-X-MAP per init, stays exact).

    Raises:
        ValueError: the recording has no segments.
        av.FFmpegError / OSError: from PyAV or the disk.
    """
    import av  # PyAV is imported in workers only

    runs = _runs(recording)
    if not runs:
        raise ValueError("the recording has no segments")
    tmp = out.with_name(out.name + TMP_SUFFIX)
    cursor = 0.0  # seconds: where the next run starts in the output
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
            out_streams: dict[str, Any] = {}
            for run_index, paths in enumerate(runs):
                with _Concat(paths) as raw, av.open(raw, "r", format="mp4") as src:
                    if run_index == 0:
                        for s in src.streams:
                            if s.type in ("video", "audio") and s.type not in out_streams:
                                out_streams[s.type] = dst.add_stream_from_template(s)
                    mapping = {s.index: out_streams[s.type] for s in src.streams
                               if s.type in out_streams}
                    shift: Fraction | None = None
                    run_end = cursor
                    for packet in src.demux(*[s for s in src.streams if s.index in mapping]):
                        if packet.dts is None or packet.size == 0:
                            continue
                        tb = packet.time_base
                        if shift is None:
                            shift = Fraction(cursor) - packet.dts * tb
                        offset = math.floor(shift / tb)
                        packet.dts += offset
                        if packet.pts is not None:
                            packet.pts += offset
                        end = float((packet.dts + (packet.duration or 0)) * tb)
                        run_end = max(run_end, end)
                        packet.stream = mapping[packet.stream.index]
                        dst.mux(packet)
                    cursor = run_end
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


class Downloads:
    """Cached MP4 remuxes: one per recording, at most ``concurrency`` being made at once.

    Concurrent requests for the same recording share one remux.
    """

    def __init__(self, run: Callable[[Callable[[], Path]], Any] | None = None,
                 concurrency: int = 1) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._inflight: dict[Path, asyncio.Future[Path]] = {}
        self._run = run

    async def get(self, recording: Recording) -> Path:
        """Path of the recording's MP4, made now if it is not cached (complete ones only)."""
        out = recording.directory / DOWNLOAD
        if out.is_file():
            return out
        fut = self._inflight.get(out)
        if fut is not None:
            return await asyncio.shield(fut)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._inflight[out] = fut
        try:
            async with self._semaphore:
                if self._run is not None:
                    path: Path = await self._run(lambda: remux_to_mp4(recording, out))
                else:
                    path = await asyncio.to_thread(remux_to_mp4, recording, out)
            fut.set_result(path)
            return path
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            del self._inflight[out]
