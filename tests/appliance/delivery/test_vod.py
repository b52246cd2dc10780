"""VOD playlist rules (RFC 8216) and the MP4 download (PyAV remux), on real recordings."""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path

import av
from hypothesis import given
from hypothesis import strategies as st

from appliance.delivery.index import DOWNLOAD, IndexEntry, load
from appliance.delivery.vod import Downloads, remux_to_mp4, render_vod_playlist
from tests.appliance.delivery.recording_factory import record
from tests.media.hls.media_factory import make_stream


def entry(i: int, duration: float, *, init: str = "init-0.mp4", disc: bool = False
          ) -> IndexEntry:
    return IndexEntry(f"seg-{i}.m4s", init, duration, disc, 100, 0.0)


def test_vod_playlist_shape() -> None:
    """VOD type, ENDLIST, one MAP, constant target ≥ every EXTINF, URIs relative."""
    text = render_vod_playlist([entry(0, 2.0), entry(1, 2.48), entry(2, 1.2)])
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:7"]
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert lines.count('#EXT-X-MAP:URI="init-0.mp4"') == 1
    assert "#EXT-X-TARGETDURATION:3" in lines
    assert [ln for ln in lines if not ln.startswith("#")] == ["seg-0.m4s", "seg-1.m4s",
                                                              "seg-2.m4s"]
    assert "#EXT-X-DISCONTINUITY" not in lines


def test_discontinuity_and_new_map_per_init() -> None:
    text = render_vod_playlist([entry(0, 2.0), entry(1, 2.0, disc=True),
                                entry(2, 2.0, init="init-1.mp4")])
    lines = text.splitlines()
    assert lines.count("#EXT-X-DISCONTINUITY") == 2
    i = lines.index('#EXT-X-MAP:URI="init-1.mp4"')
    assert lines[i - 1] == "#EXT-X-DISCONTINUITY"


@given(st.lists(st.floats(min_value=0.001, max_value=600.0), min_size=1, max_size=50))
def test_target_duration_covers_every_segment(durations: list[float]) -> None:
    """RFC 8216 §4.3.3.1: each EXTINF rounded to the nearest integer ≤ TARGETDURATION."""
    text = render_vod_playlist([entry(i, d) for i, d in enumerate(durations)])
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)[1])  # type: ignore[index]
    for m in re.finditer(r"#EXTINF:([0-9.]+),", text):
        assert round(float(m[1])) <= target
        assert float(m[1]) <= target + 0.0005
    assert target <= math.ceil(max(durations)) + 1


async def test_mp4_download_plays_whole_with_moov_first(tmp_path: Path) -> None:
    """Remux across a reconnect: one MP4, moov before mdat, all frames, no 10 s hole."""
    _, writer, _ = await record(tmp_path, [0.0, 13.0], seconds=3.0)
    recording = load(tmp_path / "b1")
    assert recording is not None
    out = remux_to_mp4(recording, tmp_path / "b1" / DOWNLOAD)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    frames = 0
    with av.open(str(out)) as c:
        duration = float(c.duration or 0) / av.time_base
        assert {s.type for s in c.streams} == {"video", "audio"}
        for _ in c.decode(video=0):
            frames += 1
    assert frames == 2 * make_stream(3.0).video_frames
    assert abs(duration - 6.0) < 0.5, duration
    writer.close()


async def test_downloads_cache_and_share_one_remux(tmp_path: Path) -> None:
    _, writer, _ = await record(tmp_path, [0.0], seconds=2.0)
    recording = load(tmp_path / "b1")
    assert recording is not None
    calls = 0

    async def run(fn):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await asyncio.to_thread(fn)

    downloads = Downloads(run=run, concurrency=1)
    paths = await asyncio.gather(*(downloads.get(recording) for _ in range(4)))
    assert len(set(paths)) == 1 and calls == 1
    assert await downloads.get(recording) == paths[0] and calls == 1
    assert not list((tmp_path / "b1").glob("*.tmp"))
    writer.close()


def test_independent_segments_only_when_every_segment_starts_with_a_keyframe() -> None:
    """RFC 8216 §4.3.5.1: a forced cut inside a long GOP drops EXT-X-INDEPENDENT-SEGMENTS."""
    ok = render_vod_playlist([entry(0, 2.0), entry(1, 2.0)])
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in ok
    forced = IndexEntry("seg-1.m4s", "init-0.mp4", 2.0, False, 100, 0.0, independent=False)
    assert "#EXT-X-INDEPENDENT-SEGMENTS" not in render_vod_playlist([entry(0, 2.0), forced])
    assert IndexEntry.maybe_parse(forced.to_line()) == forced
    assert IndexEntry.maybe_parse(entry(0, 1.0).to_line()) == entry(0, 1.0)


def test_live_recording_is_an_event_playlist() -> None:
    text = render_vod_playlist([entry(0, 2.0)], complete=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text


async def test_vod_playlists_pass_strict_parsers(tmp_path: Path) -> None:
    """Independent oracles (hls-parser strict mode, m3u8): plain, reconnect, codec change,
    live EVENT, forced cut — all valid."""
    from tests.helpers.strict_hls import assert_strictly_valid

    _, writer, _ = await record(tmp_path, [0.0, 12.0], seconds=3.0)
    recording = load(tmp_path / "b1")
    assert recording is not None
    entries = list(recording.entries)
    forced = [*entries[:2], IndexEntry("seg-9.m4s", "init-1.mp4", 2.7, True, 10, 0.0,
                                       independent=False)]
    assert_strictly_valid([render_vod_playlist(entries),
                           render_vod_playlist(entries, complete=False),
                           render_vod_playlist(forced)])
    writer.close()
