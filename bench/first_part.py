"""B1 (LL-HLS): publish → first playlist with a part, first part bytes, first segment.

Method. For every repetition a fresh stream is created on one running ``hearth serve`` and the
bench source (``make_source()``: 720p30, 3 Mbit/s, 2 s GOP) is pushed with
``ffmpeg -re -i src.flv -c copy -f flv rtmp://…``. Times are measured from just before the
ffmpeg process is spawned (``t=0``), on ``time.monotonic()``, by three concurrent asyncio
tasks on one aiohttp client:

- a poller: ``GET media.m3u8`` every 10 ms (a plain request is held until the first complete
  segment exists: plain RFC 8216 clients never see a parts-only playlist);
- a blocking request ``?_HLS_msn=0&_HLS_part=0``, repeated until the stream exists (it is
  released in the loop iteration the first part lands);
- on the first playlist listing a part, a fetch of ``init-*.mp4`` + its first part.

Reported, p50/p95 over the repetitions:

- ``started_at``: the stream's ``started_at`` from ``/api/streams/{id}`` (server wall clock,
  mapped onto t via the wall clock taken at t=0), i.e. ffmpeg spawn + RTMP connect;
- ``1st frame``: the first part's EXT-X-PROGRAM-DATE-TIME (wall-clock arrival of its first
  sample over RTMP), mapped the same way;
- ``playlist w/ part`` (poll and blocking), ``part bytes``, ``1st segment``;
- ``part − frame``: first playlist with a part minus first-frame arrival (target ≤ 0.3 s).

nginx-rtmp (``hls_fragment 2s``) is run the same way with a 10 ms poll of its m3u8 (it writes
the playlist only when it closes the first fragment; no parts).

Caveats: the source is a file pushed at real time, so a part can only be sealed once one part
duration of media (plus one frame, which seals it) has arrived: the floor of ``part − frame``
is ``part_target + 1/30 s``. With ``hls.part_target`` 0.333 s the 0.3 s target is out of
reach by construction (the product default is now 0.2 s); ``--part-target 0.2`` runs a
second server with
200 ms parts (performance.md's reference setting). The wall-clock mapping assumes the wall
clock does not step during a run. Prints numbers, never asserts.

    /tmp/hv/bin/python bench/first_part.py [--reps 10] [--part-target 0.333 0.2] [--no-nginx]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    hearth_server,
    make_source,
    pct,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
)
from bench.peers import nginx_rtmp as nginx_peer

POLL_S = 0.010
REP_TIMEOUT_S = 10.0
PDT_RE = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)")
MAP_RE = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')

MILESTONES = (
    "started_at",
    "1st frame (PDT)",
    "playlist w/ part (poll)",
    "playlist w/ part (blocking)",
    "part bytes fetched",
    "1st segment (EXTINF)",
    "part − frame",
)


@dataclass
class Series:
    """Milestone name → seconds per repetition."""

    values: dict[str, list[float]] = field(default_factory=dict)
    failures: int = 0

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.values.setdefault(name, []).append(value)


def _pdt_epoch(text: str) -> float | None:
    m = PDT_RE.search(text)
    if m is None:
        return None
    return datetime.fromisoformat(m[1].replace("Z", "+00:00")).timestamp()


async def hearth_rep(base: str, sid: str, rtmp_url: str, src: Path) -> dict[str, float]:
    """One publish of ``src``; returns milestone → seconds since ffmpeg spawn."""
    out: dict[str, float] = {}
    url = f"{base}/hls/{sid}/media.m3u8"
    token_url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    token_url.set_result(url)  # no session redirect any more: one URL for every player
    got_part = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REP_TIMEOUT_S)) as http:
        wall0 = time.time()
        t0 = time.monotonic()
        ff = start_publisher(src, rtmp_url)

        def now() -> float:
            return time.monotonic() - t0

        async def on_part_playlist(text: str, key: str) -> None:
            out.setdefault(key, now())
            if got_part.is_set():
                return
            got_part.set()
            pdt = _pdt_epoch(text)
            if pdt is not None:
                out["1st frame (PDT)"] = pdt - wall0
            maps = MAP_RE.findall(text)
            base_url = str(token_url.result()).rsplit("/", 1)[0]
            first_part = re.search(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
            for name in [*maps[:1], *(first_part.groups() if first_part else ())]:
                async with http.get(f"{base_url}/{name}") as r:
                    await r.read()
                    if r.status != 200:
                        return
            out["part bytes fetched"] = now()

        async def poller() -> None:
            cur = url
            while now() < REP_TIMEOUT_S:
                async with http.get(cur, allow_redirects=False) as r:
                    body = await r.text()
                    if r.status == 200:
                        if "#EXT-X-PART:" in body:
                            await on_part_playlist(body, "playlist w/ part (poll)")
                        if "#EXTINF" in body:
                            out["1st segment (EXTINF)"] = now()
                            return
                await asyncio.sleep(POLL_S)

        async def blocker() -> None:
            cur = await token_url
            while now() < REP_TIMEOUT_S:  # 404 until the publish is accepted
                async with http.get(f"{cur}?_HLS_msn=0&_HLS_part=0") as r:
                    body = await r.text()
                    if r.status == 200 and "#EXT-X-PART:" in body:
                        await on_part_playlist(body, "playlist w/ part (blocking)")
                        return
                await asyncio.sleep(POLL_S)

        async def started_at() -> None:
            await got_part.wait()
            async with http.get(f"{base}/api/streams/{sid}") as r:
                data = await r.json()
            if data.get("started_at"):
                out["started_at"] = float(data["started_at"]) - wall0

        try:
            tasks = [asyncio.create_task(c) for c in (poller(), blocker(), started_at())]
            done, pending = await asyncio.wait(tasks, timeout=REP_TIMEOUT_S + 1)
            for t in pending:
                t.cancel()
            for t in done:
                with contextlib.suppress(Exception):
                    t.result()
        finally:
            terminate(ff, timeout=3)
    frame, part = out.get("1st frame (PDT)"), out.get("playlist w/ part (poll)")
    blocking = out.get("playlist w/ part (blocking)")
    first = min(x for x in (part, blocking) if x is not None) if part or blocking else None
    if frame is not None and first is not None:
        out["part − frame"] = first - frame
    return out


async def nginx_rep(playlist_url: str, rtmp_url: str, src: Path) -> float | None:
    """Seconds from ffmpeg spawn to nginx-rtmp's first m3u8 (None on timeout)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        t0 = time.monotonic()
        ff = start_publisher(src, rtmp_url)
        try:
            while time.monotonic() - t0 < REP_TIMEOUT_S:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(playlist_url) as r:
                        body = await r.text()
                        if r.status == 200 and "#EXTINF" in body:
                            return time.monotonic() - t0
                await asyncio.sleep(POLL_S)
            return None
        finally:
            terminate(ff, timeout=3)


def run_hearth(src: Path, reps: int, part_target: float) -> Series:
    series = Series()
    os.environ["HEARTH_HLS_PART_TARGET"] = str(part_target)
    os.environ.setdefault("HEARTH_LOG_LEVEL", "WARNING")
    try:
        with hearth_server() as srv:
            for i in range(reps):
                created = srv.create_stream(f"first-part-{i}")
                res = asyncio.run(
                    hearth_rep(srv.base, created["id"], srv.rtmp_url(created["stream_key"]), src)
                )
                if "playlist w/ part (poll)" not in res:
                    series.failures += 1
                for k, v in res.items():
                    series.add(k, v)
                time.sleep(0.3)
    finally:
        os.environ.pop("HEARTH_HLS_PART_TARGET", None)
    return series


def run_nginx(src: Path, reps: int) -> Series:
    series = Series()
    with nginx_peer.nginx_rtmp(fragment="2s", playlist_length="6s") as ng:
        for i in range(reps):
            key = f"fp{i}"
            series.add(
                "first m3u8 (= 1st segment)",
                asyncio.run(nginx_rep(ng.playlist_url(key), ng.rtmp_url(key), src)),
            )
            time.sleep(0.3)
    return series


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--part-target", type=float, nargs="+", default=[0.333, 0.2])
    ap.add_argument("--no-nginx", action="store_true")
    args = ap.parse_args()
    reps = max(1, min(args.reps, 50))
    print_system_info()
    src = make_source()
    rows: list[list[object]] = []
    for pt in args.part_target:
        s = run_hearth(src, reps, pt)
        for name in MILESTONES:
            v = s.values.get(name, [])
            rows.append([f"hearth part={pt:g}s", name, len(v), pct(v, 50), pct(v, 95)])
        if s.failures:
            rows.append([f"hearth part={pt:g}s", "reps without a part", s.failures, "", ""])
    if not args.no_nginx:
        reason = nginx_peer.available()
        if reason:
            print(f"# nginx-rtmp skipped: {reason}")
        else:
            s = run_nginx(src, reps)
            for name, v in s.values.items():
                rows.append(["nginx-rtmp 2s", name, len(v), pct(v, 50), pct(v, 95)])
    print(f"# seconds from ffmpeg spawn (except 'part − frame'); {reps} reps, poll 10 ms")
    print_table(["server", "milestone", "n", "p50 s", "p95 s"], rows)


if __name__ == "__main__":
    main()
