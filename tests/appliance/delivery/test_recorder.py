"""The recorder with real H.264/AAC through the live HLS muxer: what HLS serves is what is kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.delivery import index
from appliance.delivery.index import INDEX, META, finalise_interrupted, load
from appliance.delivery.recorder import DiskWriter, Recorder
from appliance.delivery.storage import Storage
from appliance.delivery.vod import render_vod_playlist
from media.hls.segmenter import HlsMuxer
from tests.appliance.delivery.recording_factory import (
    FailingStorage,
    StallingStorage,
    drain,
    publish,
    record,
)
from tests.media.hls.media_factory import make_stream


def play_vod(directory: Path) -> tuple[float, int]:
    """Play the VOD playlist to the end with FFmpeg's HLS demuxer: (seconds, video frames)."""
    rec = load(directory)
    assert rec is not None
    playlist = directory / "index.m3u8"
    playlist.write_text(render_vod_playlist(rec.entries))
    frames = 0
    last = 0.0
    with av.open(str(playlist), options={"allowed_extensions": "ALL",
                                         "protocol_whitelist": "file"}) as c:
        for frame in c.decode(video=0):
            frames += 1
            last = float(frame.time)
    first = 0.0
    return last - first, frames


async def test_segments_on_disk_are_the_bytes_hls_served(tmp_path: Path) -> None:
    """The recording holds exactly the live muxer's init and segments (no second mux)."""
    served: dict[str, bytes] = {}
    writer = DiskWriter()
    rec = await Recorder.start("b1", tmp_path / "b1", Storage(), writer)
    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=100)

    class Tee:
        def segment(self, seg):  # type: ignore[no-untyped-def]
            served[seg.name] = muxer.get(seg.name) or b""
            rec.segment(seg)

        def end(self) -> None:
            rec.end()

    muxer.sink = Tee()
    publish(muxer, make_stream(4.0))
    muxer.end()
    await drain(writer)
    recording = load(tmp_path / "b1")
    assert recording is not None and recording.complete
    assert len(recording.entries) == len(served) >= 3
    for entry, (name, data) in zip(recording.entries, served.items(), strict=True):
        assert (tmp_path / "b1" / entry.seg).read_bytes() == data, name
    assert (tmp_path / "b1" / "init-0.mp4").read_bytes() == muxer.get("init-0.mp4")
    assert rec.status.segments == len(served)
    assert rec.status.error == ""
    writer.close()


async def test_recording_plays_to_the_end_in_pyav(tmp_path: Path) -> None:
    """Duration of the VOD within a frame or two of what was published; all frames decode."""
    rec, writer, _ = await record(tmp_path, [0.0], seconds=4.0)
    seconds, frames = play_vod(tmp_path / "b1")
    assert frames == make_stream(4.0).video_frames
    assert abs(seconds - 4.0) < 0.2
    assert abs(rec.status.duration - 4.0) < 0.2
    assert json.loads((tmp_path / "b1" / META).read_text())["state"] == "complete"
    writer.close()


async def test_reconnect_is_a_discontinuity_in_the_vod(tmp_path: Path) -> None:
    """A reconnect within grace → EXT-X-DISCONTINUITY, same init (same codec config)."""
    _, writer, _ = await record(tmp_path, [0.0, 14.0], seconds=3.0)
    recording = load(tmp_path / "b1")
    assert recording is not None
    text = render_vod_playlist(recording.entries)
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.count("#EXT-X-MAP:") == 1
    _, frames = play_vod(tmp_path / "b1")
    assert frames == 2 * make_stream(3.0).video_frames
    writer.close()


async def test_codec_change_at_reconnect_gets_a_new_init(tmp_path: Path) -> None:
    writer = DiskWriter()
    rec = await Recorder.start("b1", tmp_path / "b1", Storage(), writer)
    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=3)
    muxer.sink = rec
    publish(muxer, make_stream(2.0))
    muxer.mark_discontinuity()
    publish(muxer, make_stream(2.0, width=480, height=272), 10.0)
    muxer.end()
    await drain(writer)
    recording = load(tmp_path / "b1")
    assert recording is not None
    text = render_vod_playlist(recording.entries)
    assert '#EXT-X-MAP:URI="init-0.mp4"' in text and '#EXT-X-MAP:URI="init-1.mp4"' in text
    assert text.index("#EXT-X-DISCONTINUITY") < text.index('URI="init-1.mp4"')
    _, frames = play_vod(tmp_path / "b1")
    assert frames == 2 * make_stream(2.0).video_frames
    writer.close()


async def test_disk_full_stops_the_recording_not_the_stream(tmp_path: Path) -> None:
    """ENOSPC at the storage seam → state failed with the reason; the muxer keeps going."""
    changes: list[str] = []
    writer = DiskWriter()
    rec = await Recorder.start("b1", tmp_path / "b1", FailingStorage(ok_writes=3), writer,
                               on_change=lambda r: changes.append(r.error))
    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=3)
    muxer.sink = rec
    stream = make_stream(6.0)
    publish(muxer, stream)
    await drain(writer)
    assert rec.state == "failed"
    assert "No space left on device" in rec.error and "errno 28" in rec.error
    assert changes == [rec.error]
    # Live delivery is untouched: the muxer still produces and serves segments.
    publish(muxer, stream, 6.0)
    assert muxer.stats.segments_emitted >= 8
    assert muxer.playlist() is not None
    muxer.end()
    await drain(writer)
    # What was written before the error plays.
    recording = load(tmp_path / "b1")
    assert recording is not None and recording.meta.state == "failed"
    assert len(recording.entries) == 2  # init + 2 segments were the 3 good writes
    _, frames = play_vod(tmp_path / "b1")
    assert frames > 0
    writer.close()


async def test_stalled_disk_bounds_the_backlog_then_stops(tmp_path: Path) -> None:
    storage = StallingStorage()
    writer = DiskWriter()
    rec = await Recorder.start("b1", tmp_path / "b1", storage, writer, max_backlog=3)
    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=3)
    muxer.sink = rec
    publish(muxer, make_stream(8.0))  # ~8 segments while the disk is stalled
    assert rec.state == "failed"
    assert "disk too slow" in rec.error
    assert rec.status.backlog <= 3
    storage.release.set()
    muxer.end()
    await drain(writer)
    writer.close()


async def test_kill_9_keeps_every_closed_segment_and_is_finalised_on_start(
        tmp_path: Path) -> None:
    """A crash mid-recording: torn index line and a half-written temp file are ignored."""
    _, writer, _ = await record(tmp_path, [0.0], seconds=4.0, end=False)
    writer.close()
    directory = tmp_path / "b1"
    good = load(directory)
    assert good is not None and not good.complete
    # What kill -9 can leave: a torn last index line and an orphan temporary.
    torn = (directory / INDEX).read_bytes() + b'{"seg":"seg-99.m4s","init":"init-0.mp4","dur'
    (directory / INDEX).write_bytes(torn)
    (directory / "seg-99.m4s.tmp").write_bytes(b"\0" * 100)
    root = tmp_path / "data"
    (root / "recordings").mkdir(parents=True)
    os.rename(directory, root / "recordings" / "b1")
    done = finalise_interrupted(root, Storage())
    assert [r.broadcast_id for r in done] == ["b1"]
    recording = load(root / "recordings" / "b1")
    assert recording is not None and recording.complete
    assert recording.entries == good.entries
    assert not (root / "recordings" / "b1" / "seg-99.m4s.tmp").exists()
    seconds, frames = play_vod(root / "recordings" / "b1")
    assert frames > 0 and seconds > 2.0
    assert finalise_interrupted(root, Storage()) == []  # idempotent


async def test_resume_after_restart_appends_with_a_discontinuity(tmp_path: Path) -> None:
    _, writer, _ = await record(tmp_path, [0.0], seconds=2.0, end=False)
    n = len(load(tmp_path / "b1").entries)  # type: ignore[union-attr]
    _, before = play_vod(tmp_path / "b1")  # the open segment at the "crash" is lost
    assert 0 < before < make_stream(2.0).video_frames
    rec2 = await Recorder.start("b1", tmp_path / "b1", Storage(), writer)
    muxer = HlsMuxer(segment_target=1.0, part_target=0.2, window=3)
    muxer.sink = rec2
    publish(muxer, make_stream(2.0), 30.0)
    muxer.end()
    await drain(writer)
    recording = load(tmp_path / "b1")
    assert recording is not None and recording.complete
    assert recording.entries[n].discontinuity and recording.entries[n].init == "init-1.mp4"
    assert rec2.status.segments == len(recording.entries)
    _, frames = play_vod(tmp_path / "b1")
    assert frames == before + make_stream(2.0).video_frames
    writer.close()


def test_index_ignores_entries_whose_file_is_missing_or_short(tmp_path: Path) -> None:
    d = tmp_path / "b1"
    d.mkdir()
    (d / "init-0.mp4").write_bytes(b"init")
    (d / "seg-0.m4s").write_bytes(b"x" * 10)
    (d / "seg-1.m4s").write_bytes(b"x" * 5)
    lines = [index.IndexEntry(f"seg-{i}.m4s", "init-0.mp4", 1.0, False, 10, 0.0).to_line()
             for i in range(3)]
    (d / INDEX).write_bytes(b"".join(lines))
    assert [e.seg for e in index.read_entries(d)] == ["seg-0.m4s"]


@pytest.mark.parametrize("line", [
    b"", b"{", b"[]", b"null", b'{"seg":"../x","init":"init-0.mp4","duration":1,"bytes":1}',
    b'{"seg":"seg-0.m4s","init":"/etc/passwd","duration":1,"bytes":1}',
    b'{"seg":"seg-0.m4s","init":"init-0.mp4","duration":NaN,"bytes":1}',
    b'{"seg":"seg-0.m4s","init":"init-0.mp4","duration":1e9,"bytes":1}',
    b'{"seg":"seg-0.m4s","init":"init-0.mp4","duration":1,"bytes":true}',
    b'{"seg":"seg-0.m4s","init":"init-0.mp4","duration":1,"bytes":-1}',
    b'{"seg":"seg-0.m4s","init":"init-0.mp4","duration":true,"bytes":1}',
    b"[" * 100_000,
])
def test_hostile_index_lines_are_ignored(line: bytes) -> None:
    assert index.IndexEntry.maybe_parse(line) is None


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_index_parser_never_raises(line: bytes) -> None:
    entry = index.IndexEntry.maybe_parse(line)
    assert entry is None or isinstance(entry, index.IndexEntry)


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["broadcast_id", "state", "started_at", "ended_at",
                                         "error", "x"]), c, max_size=6), max_leaves=20))
def test_meta_reader_never_raises(obj: object) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "meta.json"
        path.write_text(json.dumps(obj))
        meta = index.Meta.maybe_read(path)
        assert meta is None or meta.state in index.STATES


async def test_writer_closed_fails_jobs_instead_of_raising(tmp_path: Path) -> None:
    writer = DiskWriter()
    writer.close()
    fut = writer.submit(lambda: 1)
    with pytest.raises(OSError, match="closed"):
        fut.result(1)
    writer.close()  # idempotent
