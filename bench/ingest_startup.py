"""B1: ingest -> first playlist (performance.md §4 and §7).

For Hearth and for nginx-rtmp (hls_fragment 2s, hls_playlist_length 6s), each repetition:
start a fresh server, start ``ffmpeg -re -i src.flv -c copy -f flv rtmp://…/live/KEY`` and poll
the playlist every 10 ms. Reported, from the ffmpeg process start:

- first 200: first HTTP 200 for the playlist;
- first part: first playlist listing an LL-HLS part (``#EXT-X-PART``; Hearth only);
- first segment: first playlist listing a complete segment (``#EXTINF``).

Prints numbers, never asserts. Usage::

    python bench/ingest_startup.py [--reps N] [--quick] [--hearth-only | --nginx-only] [--gop 1|2]
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    hearth_server,
    http_get,
    make_source,
    pct,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
)
from bench.peers import nginx_rtmp as nginx_peer

POLL_S = 0.010


@dataclass
class Result:
    first_200: list[float] = field(default_factory=list)
    first_part: list[float] = field(default_factory=list)
    first_segment: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def measure(src: Path, rtmp_url: str, playlist_url: str, timeout: float) -> dict[str, float]:
    """Push src and poll the playlist; returns the times it reached each milestone."""
    out: dict[str, float] = {}
    t0 = time.monotonic()
    ff = start_publisher(src, rtmp_url)
    try:
        while time.monotonic() - t0 < timeout:
            status, body = http_get(playlist_url, timeout=1.0)
            now = time.monotonic() - t0
            if status == 200:
                out.setdefault("first_200", now)
                text = body.decode("utf-8", "replace")
                if "#EXT-X-PART:" in text:
                    out.setdefault("first_part", now)
                if "#EXTINF" in text:
                    out.setdefault("first_segment", now)
                    break
            if ff.poll() is not None:
                raise RuntimeError(f"ffmpeg exited with {ff.returncode}")
            time.sleep(POLL_S)
    finally:
        terminate(ff)
    return out


def record(res: Result, got: dict[str, float], label: str, rep: int) -> None:
    for k in ("first_200", "first_part", "first_segment"):
        if k in got:
            getattr(res, k).append(got[k])
    if "first_segment" not in got:
        res.failures.append(f"rep {rep}: no segment listed before timeout")
    parts = " ".join(f"{k}={v:.3f}s" for k, v in got.items())
    print(f"  {label} rep {rep}: {parts or 'nothing'}", flush=True)


def run_nginx(src: Path, reps: int, timeout: float) -> Result:
    res = Result()
    for i in range(reps):
        try:
            with nginx_peer.nginx_rtmp() as n:
                key = f"bench{i}"
                got = measure(src, n.rtmp_url(key), n.playlist_url(key), timeout)
            record(res, got, "nginx-rtmp", i)
        except Exception as e:  # a benchmark reports and goes on
            res.failures.append(f"rep {i}: {e}")
            print(f"  nginx-rtmp rep {i}: FAILED {e}", flush=True)
    return res


def run_hearth(src: Path, reps: int, timeout: float) -> Result:
    res = Result()
    for i in range(reps):
        try:
            with hearth_server() as h:
                s = h.create_stream(f"bench {i}")
                path = urllib.parse.urlsplit(s.get("hls_url", "")).path
                playlist = h.base + (path or f"/hls/{s['id']}/index.m3u8")
                got = measure(src, h.rtmp_url(s["stream_key"]), playlist, timeout)
            record(res, got, "hearth", i)
        except Exception as e:
            res.failures.append(f"rep {i}: {e}")
            print(f"  hearth rep {i}: FAILED {e}", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=10, help="repetitions per server (default 10)")
    ap.add_argument("--quick", action="store_true", help="3 repetitions")
    ap.add_argument("--gop", type=int, default=2, choices=(1, 2), help="source GOP in seconds")
    ap.add_argument("--timeout", type=float, default=15.0, help="per-repetition timeout (s)")
    who = ap.add_mutually_exclusive_group()
    who.add_argument("--hearth-only", action="store_true")
    who.add_argument("--nginx-only", action="store_true")
    args = ap.parse_args(argv)
    reps = 3 if args.quick else args.reps

    print_system_info()
    src = make_source(gop_seconds=args.gop)
    print(f"# source {src.name}; {reps} repetitions per server; poll every {POLL_S * 1000:.0f} ms")

    servers: list[tuple[str, Callable[[Path, int, float], Result]]] = []
    if not args.nginx_only:
        servers.append(("hearth", run_hearth))
    if not args.hearth_only:
        reason = nginx_peer.available()
        if reason:
            print(f"# nginx-rtmp skipped: {reason}")
        else:
            servers.append(("nginx-rtmp (hls_fragment 2s)", run_nginx))

    results: list[tuple[str, Result]] = []
    for name, fn in servers:
        print(f"\n## {name}", flush=True)
        results.append((name, fn(src, reps, args.timeout)))

    print("\nSeconds from ffmpeg start (p50 / p95, n = successful runs)")

    def cell(xs: list[float]) -> str:
        return f"{pct(xs, 50):.3f} / {pct(xs, 95):.3f} (n={len(xs)})" if xs else "-"

    rows = [
        [name, cell(r.first_200), cell(r.first_part), cell(r.first_segment), len(r.failures)]
        for name, r in results
    ]
    print_table(["server", "first 200 m3u8", "first part", "first segment", "failures"], rows)
    for name, r in results:
        for f in r.failures[:5]:
            print(f"  {name}: {f.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
