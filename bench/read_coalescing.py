"""What RTMP read coalescing (``rtmp.read_coalescing``, SO_RCVLOWAT) costs in latency and saves
in CPU, measured side by side in one run.

One ``ffmpeg -re -c copy`` publisher feeds the same stream (tee muxer) to N Hearth servers that
differ only in ``HEARTH_RTMP_READ_COALESCING`` (the first is the reference, normally 0 = off).
For every server, an LL-HLS client asks for each next part with a blocking playlist request
(``_HLS_msn``/``_HLS_part``, rfc8216bis §6.2.5.2) and records the wall-clock time the part
became available. Parts are matched across servers by their position in the stream (segment
number since the first segment, part index), so the difference is the delay coalescing adds
to part availability, free of the publisher's own jitter. Server CPU (user+sys, all threads)
over the same window is printed too; servers on CPU 0, publisher and clients on the others.

Prints numbers, never asserts::

    python bench/read_coalescing.py [--windows 0,0.02] [--seconds 30] [--streams 1]

With ``--streams N`` there are N such publishers (each teed to every server); latency is
taken from the first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CpuSampler, hearth_server, make_source, print_system_info, terminate
from bench.ingest_cpu import _cpus, _uptime, pin

FRAME_MS = 1000 / 30
_PART_RE = re.compile(r'#EXT-X-PART:[^\n]*URI="part-(\d+)-(\d+)\.m4s"')
_SEQ_RE = re.compile(r"#EXT-X-MEDIA-SEQUENCE:(\d+)")


async def watch_parts(session: aiohttp.ClientSession, url: str, until: float,
                      seen: dict[tuple[int, int], float]) -> None:
    """Record when each part (position in the stream) first appears, via blocking requests."""
    msn0: int | None = None
    nxt: tuple[int, int] | None = None
    while time.monotonic() < until:
        q = "" if nxt is None else f"?_HLS_msn={nxt[0]}&_HLS_part={nxt[1]}"
        try:
            async with session.get(url + q, timeout=aiohttp.ClientTimeout(total=10)) as r:
                body = await r.text()
                status = r.status
        except (TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.05)
            continue
        now = time.time()
        if status != 200:
            await asyncio.sleep(0.05)
            continue
        parts = [(int(m), int(p)) for m, p in _PART_RE.findall(body)]
        if not parts:
            await asyncio.sleep(0.02)
            continue
        if msn0 is None:
            seq = _SEQ_RE.search(body)
            msn0 = int(seq.group(1)) if seq else parts[0][0]
        for m, p in parts:
            seen.setdefault((m - msn0, p), now)
        last = parts[-1]
        nxt = (last[0], last[1] + 1)


def publisher(src: Path, urls: list[str]) -> subprocess.Popen[bytes]:
    tee = "|".join(f"[f=flv:onfail=ignore]{u}" for u in urls)
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", str(src), "-c", "copy", "-map", "0", "-f", "tee", tee],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", default="0,0.02",
                    help="read_coalescing value of each server, the first is the reference")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--streams", type=int, default=1)
    args = ap.parse_args()
    windows = [w.strip() for w in args.windows.split(",") if w.strip()]
    print_system_info()
    print(f"# uptime: {_uptime()}")
    src = make_source()
    base_env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        servers = []
        for w in windows:
            os.environ["HEARTH_RTMP_READ_COALESCING"] = w
            servers.append(stack.enter_context(hearth_server()))
            os.environ.clear()
            os.environ.update(base_env)
        streams = [[h.create_stream(f"rc {i}") for h in servers] for i in range(args.streams)]
        cpus = _cpus()
        for h in servers:
            pin([h.proc.pid], cpus[:1], tree=True)
        pubs = [publisher(src, [h.rtmp_url(s["stream_key"])
                                for h, s in zip(servers, row, strict=True)])
                for row in streams]
        stack.callback(lambda: [terminate(p, 5) for p in pubs])
        pin([p.pid for p in pubs], cpus[1:])
        urls = [h.playlist_url(s["id"]) for h, s in zip(servers, streams[0], strict=True)]
        seen: list[dict[tuple[int, int], float]] = [{} for _ in servers]
        samplers = [CpuSampler([h.proc.pid], tree=True) for h in servers]

        async def run() -> None:
            async with aiohttp.ClientSession() as session:
                until = time.monotonic() + args.seconds + 5
                tasks = [asyncio.create_task(watch_parts(session, u, until, s))
                         for u, s in zip(urls, seen, strict=True)]
                await asyncio.sleep(5)  # first parts, then measure CPU over the rest
                for s in samplers:
                    s.start()
                await asyncio.gather(*tasks)

        asyncio.run(run())
        cpu = [s.stop() for s in samplers]
        dead = sum(p.poll() is not None for p in pubs)
    print(f"# uptime at the end: {_uptime()}; publishers exited early: {dead}")
    ref = seen[0]
    print(f"part availability vs the reference (read_coalescing={windows[0]}), "
          f"{args.streams} stream(s), frame interval {FRAME_MS:.1f} ms")
    print(f"{'read_coalescing':>16} {'parts':>6} {'delta p50 ms':>13} {'p95 ms':>8} "
          f"{'max ms':>8} {'> 1 frame':>10} {'CPU %/stream':>13}")
    for w, s, (cpu_s, wall) in zip(windows, seen, cpu, strict=True):
        common = sorted(set(s) & set(ref))[5:]  # skip the start-up parts
        deltas = [(s[k] - ref[k]) * 1000 for k in common]
        if not deltas:
            print(f"{w:>16} no common parts")
            continue
        deltas.sort()
        p95 = deltas[min(len(deltas) - 1, int(0.95 * len(deltas)))]
        late = sum(d > FRAME_MS for d in deltas)
        print(f"{w:>16} {len(deltas):6d} {statistics.median(deltas):13.1f} {p95:8.1f} "
              f"{max(deltas):8.1f} {late:10d} {100 * cpu_s / wall / args.streams:13.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
