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
