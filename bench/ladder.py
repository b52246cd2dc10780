"""Quality ladder: 720p30 (B-frames, OBS-like) → 480p + 360p, Hearth's ladder next to the ffmpeg CLI
doing the same ladder (decode once, split, scale, libx264 with the same settings, HLS out).

Prints numbers, never asserts. Usage::

    python bench/ladder.py [--seconds 20]

* Hearth: the real :class:`appliance.live.LiveBroadcast` with ``ladder 480p,360p`` in this
  process (decoder and encoder threads, the HLS muxers of the source and both renditions),
  fed the source's units at their real-time pace (units demuxed into memory first). CPU is
  this process's user+sys over the run; the same run with the ladder off (remux only) is
  shown too. Added latency: for every (segment, part), when it appeared in a rendition's
  muxer minus when it appeared in the source's.
* ffmpeg: ``ffmpeg -re`` reading the same file, ``split`` + two ``scale`` (bilinear), two
  libx264 encoders (``veryfast``, ``zerolatency``, Constrained Baseline, no B-frames,
  keyframes at the source's via ``-force_key_frames source``, one thread each), AAC copied,
  HLS with fMP4 segments out to a temp dir. CPU from ``RUSAGE_CHILDREN``.
* Real-time factor and CPU per media second: the same work without pacing (Hearth: fed as
  fast as its queues take it, so nothing is dropped or shed; ffmpeg: without ``-re``), media
  seconds per wall second. This is the fair CPU comparison: both do all the work.
* On an overloaded box the paced Hearth run may shed a rendition (its CPU guard, printed as a
  ladder event): that is the guard working, and its CPU figure then covers less work.

The machine is shared (other sessions run tests on it): ``uptime`` is printed before and
after; compare Hearth and ffmpeg from the same run only.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import av  # noqa: E402

from appliance.config import HlsConfig  # noqa: E402
from appliance.ladder import EncoderChoice, LadderSetup  # noqa: E402
from appliance.live import LiveBroadcast  # noqa: E402
from media.aac import parse_asc  # noqa: E402
from media.h264 import parse_avcc  # noqa: E402
from media.ladder import PRESETS, plan_renditions  # noqa: E402
from media.transcode import PROFILE, SCALER, X264_PRESET  # noqa: E402
from media.units import CLOCK_RATE, CodecConfig, MediaUnit, TrackKind  # noqa: E402

FFMPEG = shutil.which("ffmpeg")
LADDER = ("480p", "360p")
HLS = HlsConfig()


def make_source(path: Path, seconds: int) -> None:
    """720p30, x264 veryfast with OBS's defaults that matter here: 2 B-frames, a 2 s GOP."""
    assert FFMPEG, "ffmpeg is required"
    subprocess.run([
        FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "60",
        "-b:v", "3000k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(path),
    ], check=True)


def load_units(path: Path) -> tuple[CodecConfig, list[MediaUnit]]:
    """The file's H.264/AAC as the hub would carry them (avcC config, AVCC units, 90 kHz)."""
    units: list[MediaUnit] = []
    with av.open(str(path)) as c:
        vs, as_ = c.streams.video[0], c.streams.audio[0]
        video = parse_avcc(bytes(vs.codec_context.extradata or b""))
        audio = parse_asc(bytes(as_.codec_context.extradata or b""))
        for p in c.demux(vs, as_):
            if p.dts is None or p.size == 0:
                continue
            tb = p.time_base
            dts = int(p.dts * tb * CLOCK_RATE)
            pts = int((p.pts if p.pts is not None else p.dts) * tb * CLOCK_RATE)
            kind = TrackKind.VIDEO if p.stream.index == vs.index else TrackKind.AUDIO
            units.append(MediaUnit(kind, dts, pts if kind is TrackKind.VIDEO else dts,
                                   bool(p.is_keyframe) or kind is TrackKind.AUDIO, bytes(p), 0.0))
    units.sort(key=lambda u: u.dts)
    # MP4 starts B-frame video at a negative dts; ingest's timeline starts at 0.
    shift = -min(0, units[0].dts)
    units = [MediaUnit(u.kind, u.dts + shift, u.pts + shift, u.keyframe, u.data, 0.0)
             for u in units]
    return CodecConfig(video, audio), units


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_hearth(config: CodecConfig, units: list[MediaUnit], *, ladder: bool,
                     paced: bool) -> dict[str, float]:
    events: list[str] = []
    setup = LadderSetup(LADDER, EncoderChoice(), 30.0, lambda _l, _k, m: events.append(m)) \
        if ladder else None
    lb = LiveBroadcast("bench", "bench", HLS, ladder=setup)
    lb.start()
    seen: dict[str | None, dict[tuple[int, int], float]] = {}

    def watch(name: str | None, muxer: object) -> None:
        times = seen.setdefault(name, {})
        m = muxer

        def on_update() -> None:
            msn, part = m.last_msn, m.last_part  # type: ignore[attr-defined]
            if msn is not None and part is not None:
                times.setdefault((msn, part), time.monotonic())

        m.on_update = on_update  # type: ignore[attr-defined]

    watch(None, lb.muxer)
    watched: set[str] = set()
    cpu0, t0 = cpu_self(), time.monotonic()
    lb._publish([config])
    duration = units[-1].dts / CLOCK_RATE
    for unit in units:
        if paced:
            delay = t0 + unit.dts / CLOCK_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        else:  # as fast as the ladder takes it: wait while any of its queues is half full
            ladder_ = lb._ladder
            queues = ([ladder_._decode_queue, *(r.queue for r in ladder_._renditions)]
                      if ladder_ is not None else [])
            while any(len(q) > 30 for q in queues):
                await asyncio.sleep(0.002)
                queues = [ladder_._decode_queue, *(r.queue for r in ladder_._renditions)] \
                    if ladder_ is not None else []
            await asyncio.sleep(0)
        lb._publish([MediaUnit(unit.kind, unit.dts, unit.pts, unit.keyframe, unit.data,
                               time.time())])
        for name, muxer in lb.hls_renditions():
            if name is not None and name not in watched:
                watched.add(name)
                watch(name, muxer)
    muxers = [m for _, m in lb.hls_renditions()]
    lb._end(time.time())
    while not all(m.ended for m in muxers):
        await asyncio.sleep(0.01)
    wall = time.monotonic() - t0
    cpu = cpu_self() - cpu0
    out = {"cpu_pct": 100 * cpu / wall, "cpu_s": cpu, "wall": wall, "rtf": duration / wall}
    source = seen[None]
    for name in LADDER if ladder else ():
        delays = [t - source[k] for k, t in seen.get(name, {}).items() if k in source]
        if delays:
            out[f"{name}_lat_p50"] = statistics.median(delays)
            out[f"{name}_lat_p95"] = sorted(delays)[int(0.95 * (len(delays) - 1))]
    snap = lb.snapshot()
    for r in snap.ladder:
        out[f"{r.name}_speed"] = r.speed or 0.0
        out[f"{r.name}_dropped"] = r.frames_dropped
    if lb._ladder is not None:
        for lr in lb._ladder._renditions:
            out[f"{lr.name}_media_s"] = lr.media_seconds
            out[f"{lr.name}_segments"] = lr.muxer.stats.segments_emitted
    out["source_segments"] = lb.muxer.stats.segments_emitted
    if lb._ladder is not None:
        out["decode_dropped"] = lb._ladder.decode_dropped
    for message in events:
        print(f"  (ladder event: {message})")
    lb._abort()
    return out


def run_ffmpeg(source: Path, config: CodecConfig, *, paced: bool) -> dict[str, float]:
    assert FFMPEG and config.video is not None
    plans = plan_renditions(LADDER, config.video.width, config.video.height)
    out_dir = Path(tempfile.mkdtemp(prefix="ladder-ffmpeg-"))
    split = "".join(f"[s{i}]" for i in range(len(plans)))
    graph = f"[0:v]split={len(plans)}{split};" + ";".join(
        f"[s{i}]scale={p.width}:{p.height}:flags={SCALER.lower()}[v{i}]"
        for i, p in enumerate(plans))
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-threads", "1"]
    if paced:
        cmd.append("-re")
    cmd += ["-i", str(source), "-filter_complex", graph, "-filter_complex_threads", "1"]
    for i, p in enumerate(plans):
        pr = PRESETS[p.name]
        cmd += ["-map", f"[v{i}]", "-map", "0:a"]
        cmd += [f"-c:v:{i}", "libx264", f"-preset:v:{i}", X264_PRESET,
                f"-tune:v:{i}", "zerolatency", f"-profile:v:{i}", PROFILE,
                f"-b:v:{i}", f"{pr.bitrate}k", f"-maxrate:v:{i}", f"{pr.maxrate}k",
                f"-bufsize:v:{i}", f"{pr.bufsize}k", f"-threads:v:{i}", "1",
                f"-x264-params:v:{i}", "keyint=infinite:scenecut=0:bframes=0",
                f"-force_key_frames:v:{i}", "source"]
    cmd += ["-c:a", "copy", "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4",
            "-hls_list_size", "10", "-var_stream_map",
            " ".join(f"v:{i},a:{i}" for i in range(len(plans))),
            "-master_pl_name", "index.m3u8", str(out_dir / "v%v.m3u8")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(out_dir, ignore_errors=True)
    duration = float(av.open(str(source)).duration or 0) / av.time_base
    return {"cpu_pct": 100 * cpu / wall, "cpu_s": cpu, "wall": wall, "rtf": duration / wall}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    print(f"uptime before: {uptime()}  (shared 2-core box: other sessions run tests)")
    work = Path(tempfile.mkdtemp(prefix="ladder-bench-"))
    source = work / "source.mp4"
    make_source(source, args.seconds)
    config, units = load_units(source)
    assert config.video is not None
    print(f"source: {config.video.width}x{config.video.height} 30 fps, B-frames, 2 s GOP, "
          f"{args.seconds} s; ladder {', '.join(LADDER)} ({X264_PRESET}, {PROFILE}, 1 thread "
          "per encoder)")
    rows = [
        ("hearth remux only (paced)", asyncio.run(run_hearth(config, units, ladder=False,
                                                             paced=True))),
        ("hearth ladder (paced)", asyncio.run(run_hearth(config, units, ladder=True,
                                                         paced=True))),
        ("ffmpeg ladder (-re)", run_ffmpeg(source, config, paced=True)),
        ("hearth ladder (unpaced)", asyncio.run(run_hearth(config, units, ladder=True,
                                                           paced=False))),
        ("ffmpeg ladder (unpaced)", run_ffmpeg(source, config, paced=False)),
    ]
    print(f"{'run':28} {'CPU % of a core':>16} {'CPU s':>7} {'wall s':>7} {'RT factor':>10}")
    for name, r in rows:
        print(f"{name:28} {r['cpu_pct']:16.1f} {r['cpu_s']:7.2f} {r['wall']:7.2f} "
              f"{r['rtf']:10.2f}")
    paced = rows[1][1]
    for name in LADDER:
        if f"{name}_lat_p50" in paced:
            print(f"hearth {name}: added latency per part p50 {paced[f'{name}_lat_p50']:.3f} s, "
                  f"p95 {paced[f'{name}_lat_p95']:.3f} s; encoder speed "
                  f"{paced.get(f'{name}_speed', 0):.1f}x real time per CPU second; frames "
                  f"dropped {int(paced.get(f'{name}_dropped', 0))}; encoded "
                  f"{paced.get(f'{name}_media_s', 0):.1f} s of media, "
                  f"{int(paced.get(f'{name}_segments', 0))} segments (source: "
                  f"{int(paced['source_segments'])})")
    ratio = rows[3][1]["cpu_s"] / rows[4][1]["cpu_s"] if rows[4][1]["cpu_s"] else float("nan")
    print(f"CPU ratio hearth ladder / ffmpeg ladder for the whole file (unpaced runs): "
          f"{ratio:.2f} (hearth's figure includes its source remux and the HLS packaging of "
          "all three renditions; the units were demuxed before timing)")
    print(f"uptime after:  {uptime()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
