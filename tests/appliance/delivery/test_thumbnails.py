"""Thumbnails from real H.264: JPEG, ≤ 640 px wide, every ~10 s, bounded decodes."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
import pytest

from appliance.delivery.index import POSTER
from appliance.delivery.storage import Storage
from appliance.delivery.thumbnails import (
    Thumbnailer,
    ThumbnailError,
    make_thumbnail,
    scaled_size,
)
from media.hls.segmenter import CompletedSegment, HlsMuxer
from tests.appliance.delivery.recording_factory import publish
from tests.media.hls.media_factory import make_stream


def segments(width: int = 320, height: int = 240, seconds: float = 4.0) -> list[CompletedSegment]:
    out: list[CompletedSegment] = []

    class Collect:
        def segment(self, seg: CompletedSegment) -> None:
            out.append(seg)

        def end(self) -> None:
            pass

    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=3)
    muxer.sink = Collect()
    publish(muxer, make_stream(seconds, width=width, height=height))
    muxer.end()
    return out


def decode_jpeg(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data), "r", format="mjpeg") as c:
        frame = next(c.decode(video=0))
        return frame.width, frame.height


def test_thumbnail_is_a_jpeg_of_sane_size() -> None:
    seg = segments(1280, 720, 2.0)[0]
    jpeg, w, h = make_thumbnail(seg.init + b"".join(seg.parts))
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    assert (w, h) == (640, 360) == decode_jpeg(jpeg)
    assert 1000 < len(jpeg) < 200_000


def test_small_pictures_are_not_upscaled() -> None:
    seg = segments(320, 240, 2.0)[0]
    _, w, h = make_thumbnail(seg.init + b"".join(seg.parts))
    assert (w, h) == (320, 240)


@pytest.mark.parametrize("data", [b"", b"\0" * 100, b"ftyp" * 1000])
def test_garbage_raises_thumbnail_error(data: bytes) -> None:
    with pytest.raises(ThumbnailError):
        make_thumbnail(data)


def test_audio_only_has_no_thumbnail() -> None:
    out: list[CompletedSegment] = []

    class Collect:
        def segment(self, seg: CompletedSegment) -> None:
            out.append(seg)

        def end(self) -> None:
            pass

    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=3)
    muxer.sink = Collect()
    publish(muxer, make_stream(2.0, video=False))
    muxer.end()
    with pytest.raises(ThumbnailError):
        make_thumbnail(out[0].init + b"".join(out[0].parts))


@pytest.mark.parametrize(("w", "h", "expect"), [(1920, 1080, (640, 360)), (641, 481, (640, 480)),
                                                (7, 5, (6, 4)), (4000, 10, (640, 2))])
def test_scaled_size(w: int, h: int, expect: tuple[int, int]) -> None:
    assert scaled_size(w, h) == expect


async def test_thumbnailer_every_interval_changes_and_writes_poster(tmp_path: Path) -> None:
    now = [0.0]
    thumbs = Thumbnailer(tmp_path, Storage(), interval=10.0, clock=lambda: now[0])
    poster_dir = tmp_path / "recordings" / "b1"
    poster_dir.mkdir(parents=True)
    sink = thumbs.sink("b1", poster_dir)
    segs = segments(320, 240, 6.0)
    sink.segment(segs[0])
    sink.segment(segs[1])  # too soon: skipped without decoding
    while sink.in_flight:
        await asyncio.sleep(0.01)
    first = thumbs.latest("b1")
    assert first is not None and thumbs.made == 1
    now[0] = 10.0
    sink.segment(segs[4])
    while sink.in_flight:
        await asyncio.sleep(0.01)
    second = thumbs.latest("b1")
    assert second is not None and thumbs.made == 2
    assert second.jpeg != first.jpeg  # the picture moves: the thumbnail changes while live
    assert (tmp_path / "thumbnails" / "b1.jpg").read_bytes() == second.jpeg
    assert (poster_dir / POSTER).read_bytes() == second.jpeg
    await thumbs.close()


async def test_at_most_one_decode_in_flight_per_stream(tmp_path: Path) -> None:
    thumbs = Thumbnailer(tmp_path, Storage(), interval=0.0)
    sink = thumbs.sink("b1")
    segs = segments(320, 240, 4.0)
    for seg in segs:
        sink.segment(seg)  # all arrive while the first decode runs
    assert thumbs.skipped == len(segs) - 1
    while sink.in_flight:
        await asyncio.sleep(0.01)
    assert thumbs.made == 1
    await thumbs.close()


def eager_pair(tmp_path: Path, now: list[float]) -> tuple[Thumbnailer, list[CompletedSegment]]:
    """A Thumbnailer on an injected clock and 1 s segments of a moving 320x240 picture."""
    thumbs = Thumbnailer(tmp_path, Storage(), interval=10.0, clock=lambda: now[0])
    return thumbs, segments(320, 240, 12.0)


async def settle(thumbs: Thumbnailer) -> None:
    while any(not t.done() for t in thumbs._tasks):
        await asyncio.sleep(0.01)


async def test_after_the_first_two_a_thumbnail_is_made_only_when_asked(tmp_path: Path) -> None:
    """Issue 17 (ingest cost): the first two thumbnails come as segments arrive (announce,
    then the poster ~10 s in); after that none is decoded until one is asked for, and then
    at most one per interval, from the newest segment."""
    now = [0.0]
    thumbs, segs = eager_pair(tmp_path, now)
    poster_dir = tmp_path / "recordings" / "b1"
    poster_dir.mkdir(parents=True)
    sink = thumbs.sink("b1", poster_dir)
    sink.segment(segs[0])
    await settle(thumbs)
    now[0] = 10.0
    sink.segment(segs[1])
    await settle(thumbs)
    second = thumbs.latest("b1")
    assert second is not None and thumbs.made == 2
    for i, at in ((2, 20.0), (3, 21.0), (4, 40.0)):
        now[0] = at
        sink.segment(segs[i])  # nobody asks: nothing decoded
    await settle(thumbs)
    assert thumbs.made == 2 and sink.started == 2
    fresh = await thumbs.current("b1")
    assert thumbs.made == 3 and fresh is not None and fresh is thumbs.latest("b1")
    assert fresh.jpeg != second.jpeg  # the newest segment's picture, not the poster's
    assert fresh.jpeg == make_thumbnail(b"".join((segs[4].init, segs[4].parts[0])))[0]
    assert await thumbs.current("b1") is fresh and thumbs.made == 3  # fresh enough
    now[0] = 55.0
    assert await thumbs.current("b1") is fresh and thumbs.made == 3  # no newer segment
    sink.segment(segs[5])
    assert (await thumbs.current("b1")) is not fresh and thumbs.made == 4
    assert (poster_dir / POSTER).read_bytes() == second.jpeg  # the poster stays the second
    latest = thumbs.latest("b1")
    assert latest is not None
    assert (tmp_path / "thumbnails" / "b1.jpg").read_bytes() == latest.jpeg
    await thumbs.close()


async def test_many_askers_share_one_decode_and_one_leaving_does_not_cancel_it(
        tmp_path: Path) -> None:
    now = [0.0]
    thumbs, segs = eager_pair(tmp_path, now)
    sink = thumbs.sink("b1")
    sink.segment(segs[0])
    await settle(thumbs)
    now[0] = 30.0
    sink.segment(segs[1])  # the second eager one
    await settle(thumbs)
    now[0] = 60.0
    sink.segment(segs[2])
    askers = [asyncio.create_task(thumbs.current("b1")) for _ in range(20)]
    await asyncio.sleep(0)
    askers[0].cancel()  # a viewer that went away
    results = await asyncio.gather(*askers[1:])
    assert thumbs.made == 3 and sink.started == 3
    assert all(r is results[0] is thumbs.latest("b1") for r in results)
    await thumbs.close()


async def test_requests_cannot_raise_the_rate_above_one_per_interval(tmp_path: Path) -> None:
    """A flood of requests (every 0.25 s for 60 s, a segment every second) decodes at most
    once per interval: never more than the old always-on schedule."""
    now = [0.0]
    thumbs, segs = eager_pair(tmp_path, now)
    sink = thumbs.sink("b1")
    for step in range(240):
        now[0] = step * 0.25
        if step % 4 == 0:
            sink.segment(segs[(step // 4) % len(segs)])
        await thumbs.current("b1")
    await settle(thumbs)
    assert 6 <= thumbs.made <= 7  # 0, 10, …, 50 s (one more if a boundary lands on a step)
    await thumbs.close()


async def test_the_end_keeps_a_thumbnail_of_the_newest_segment(tmp_path: Path) -> None:
    now = [0.0]
    thumbs, segs = eager_pair(tmp_path, now)
    sink = thumbs.sink("b1")
    sink.segment(segs[0])
    await settle(thumbs)
    now[0] = 3.0
    sink.segment(segs[3])  # not due: not decoded
    await settle(thumbs)
    assert thumbs.made == 1
    sink.end()
    await settle(thumbs)
    kept = thumbs.latest("b1")
    assert thumbs.made == 2 and kept is not None
    assert kept.jpeg == make_thumbnail(b"".join((segs[3].init, segs[3].parts[0])))[0]
    assert (tmp_path / "thumbnails" / "b1.jpg").read_bytes() == kept.jpeg
    now[0] = 100.0
    assert await thumbs.current("b1") is kept and thumbs.made == 2  # ended: no more decodes
    # Nothing new since the last decode: the end decodes nothing; nor after shutdown began.
    other = thumbs.sink("b2")
    other.segment(segs[0])
    await settle(thumbs)
    other.end()
    third = thumbs.sink("b3")
    third.segment(segs[0])
    await settle(thumbs)
    third.segment(segs[1])
    await thumbs.close()
    third.end()
    assert thumbs.made == 4 and not thumbs._tasks


async def test_a_queue_of_decodes_holds_no_viewer_past_the_refresh_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decodes of many broadcasts queue on one semaphore: a request whose decode waits
    behind the others gets the newest thumbnail it has after REFRESH_WAIT, not later (a
    client asking for every broadcast's thumbnail cannot hold another's request)."""
    import time as clock_time

    from appliance.delivery import thumbnails as module

    now = [0.0]
    thumbs, segs = eager_pair(tmp_path, now)
    sinks = [thumbs.sink(f"b{i}") for i in range(4)]
    for sink in sinks:
        sink.segment(segs[0])
    await settle(thumbs)
    stale = {f"b{i}": thumbs.latest(f"b{i}") for i in range(4)}
    real = module.make_thumbnail

    def slow(mp4: bytes, max_width: int = module.MAX_WIDTH) -> tuple[bytes, int, int]:
        clock_time.sleep(0.6)  # a big picture on a slow CPU
        return real(mp4, max_width)

    monkeypatch.setattr(module, "make_thumbnail", slow)
    now[0] = 30.0
    for sink in sinks:
        sink.segment(segs[1])  # the second eager decodes start, one at a time
    t0 = clock_time.monotonic()
    got = await thumbs.current("b3")  # its decode is the last of four in the queue
    waited = clock_time.monotonic() - t0
    assert waited < module.REFRESH_WAIT + 0.5, waited
    assert got is stale["b3"]  # the newest it had, not nothing
    await settle(thumbs)
    assert thumbs.latest("b3") is not stale["b3"]  # and the decode still finished
    await thumbs.close()
