"""Throughput of the HLS packager: 60 s of 720p ~3 Mbit/s H.264 + AAC through HlsMuxer.

Encodes the stream once with PyAV (libx264 ultrafast, native AAC), then times ``push()`` for
every unit (which builds every fMP4 part and segment) and renders the playlists. Prints
numbers; asserts nothing.

    python bench/remux_fmp4.py [--seconds 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.hls import HlsMuxer
from tests.media.hls.media_factory import make_stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    stream = make_stream(
        args.seconds, width=1280, height=720, gop=50, bitrate=3_000_000, preset="ultrafast"
    )
    encode_s = time.perf_counter() - t0
    payload = sum(len(u.data) for u in stream.units)
    print(
        f"stream: {args.seconds:.0f} s 1280x720 25 fps, {stream.video_frames} video + "
        f"{stream.audio_frames} audio units, {payload * 8 / args.seconds / 1e6:.2f} Mbit/s "
        f"(encoded in {encode_s:.1f} s)"
    )
    best = float("inf")
    for _ in range(args.repeat):
        muxer = HlsMuxer(segment_target=2.0, part_target=0.333, window=6)
        muxer.set_config(stream.video, stream.audio)
        renders = 0
        muxer.on_update = None
        t0 = time.perf_counter()
        for unit in stream.units:
            muxer.push(unit)
        muxer.end()
        elapsed = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _ in range(1000):
            muxer.playlist(low_latency=True)
            muxer._playlist_cache.clear()  # measure rendering, not the cache
            renders += 1
        render_s = (time.perf_counter() - t1) / renders
        best = min(best, elapsed)
        stats = muxer.stats
    units = len(stream.units)
    print(f"push+end: best of {args.repeat}: {best * 1e3:.1f} ms for {units} units")
    print(
        f"  {units / best:,.0f} units/s ({units / best / (units / args.seconds):,.0f}x real time)"
    )
    print(
        f"  {best / units * 1e6:.1f} us per unit, "
        f"{best / stats.parts_emitted * 1e6:.0f} us per part"
    )
    print(
        f"  {stats.parts_emitted} parts, {stats.segments_emitted} segments, "
        f"{stats.bytes_total / 1e6:.1f} MB out, {stats.units_dropped} units dropped"
    )
    print(f"LL playlist render (uncached): {render_s * 1e6:.0f} us")


if __name__ == "__main__":
    main()
