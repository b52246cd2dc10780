"""LL-HLS viewer capacity: N simulated players at 3 Mbit/s, on the origin and through the edge.

Method. ``hearth serve`` runs pinned to CPU 0 (``taskset -a``), fed by ``ffmpeg -re -c copy``
looping the bench source (720p30, 3 Mbit/s CBR, 2 s GOP; performance.md §7). The players are
``tests/helpers/llhls_players.py``: each behaves like hls.js in low-latency mode (multivariant,
media playlist, then per part: fetch the newest part + a blocking reload ``_HLS_msn``/
``_HLS_part`` for the next; ``--preload`` also requests the EXT-X-PRELOAD-HINT part at once),
sends its player id and a viewing beacon every 5 s, and binds its own 127.0.x.y address. They
run in ``--procs`` processes pinned to CPU 1 (the load generator and, with ``--edge``, nginx
share that core; the origin has CPU 0 to itself).

Per N (``--players 50,100,200``, ``--seconds`` each, same stream):

- origin CPU (% of one core) and CPU milliseconds per viewer per second;
- part TTFB p50/p99 (request sent → first body byte, as the player saw it);
- lag to live p50/p95: when a player had a part vs. the part's media end (PDT + durations);
- players behind: p95 lag > 1.5 s (or no part at all);
- origin requests per second and CPU microseconds per origin request (from /metrics), and the
  projected viewers one origin core holds at the measured CPU per viewer (excluding idle);
- load-generator CPU (% of CPU 1): near 100 % means the players, not the server, are the limit.

With ``--edge`` the same players go through nginx with ``deploy/nginx-edge.conf``; the origin's
CPU should then stay flat in N. Prints numbers, asserts nothing. The machine is shared: note
``uptime`` with the figures.

    python bench/viewers.py [--players 50,100,200] [--seconds 10] [--edge] [--preload]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import (  # noqa: E402
    CpuSampler,
    hearth_server,
    make_source,
    pct,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
    tree_pids,
    wait_http_ok,
)

from tests.helpers.llhls_players import PlayerStats, run_players  # noqa: E402
from tests.helpers.nginx_edge import nginx_edge  # noqa: E402

BEHIND_LAG = 1.5


def pin(pids: list[int], cpu: int) -> None:
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def worker(conn: Connection, base: str, sid: str, n: int, seconds: float, preload: bool,
           first: int) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})
    t0 = time.process_time()
    stats = asyncio.run(run_players(base, sid, n, seconds, preload=preload,
                                    first_source=first, ramp=min(2.0, seconds / 4)))
    conn.send(([(s.parts, s.errors, s.lags, s.ttfb) for s in stats],
               time.process_time() - t0))
    conn.close()


def baseline(server_pid: int, seconds: float = 4.0) -> float:
    """Origin CPU (fraction of a core) with no players: ingest + packaging only."""
    sampler = CpuSampler([server_pid])
    sampler.start()
    time.sleep(seconds)
    cpu, wall = sampler.stop()
    return cpu / wall


def origin_requests(origin: str) -> int:
    """HLS requests the origin answered so far (``hearth_hls_requests_total``, all kinds)."""
    import urllib.request

    with urllib.request.urlopen(f"{origin}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("hearth_hls_requests_total{"))


def run_step(base: str, sid: str, n: int, seconds: float, procs: int, preload: bool,
             server_pid: int, idle: float, origin: str) -> list[object]:
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    ctx = mp.get_context("fork")
    pipes, children = [], []
    first = 0
    for share in shares:
        if share == 0:
            continue
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(child, base, sid, share, seconds, preload, first),
                        daemon=True)
        p.start()
        first += share
        pipes.append(parent)
        children.append(p)
    sampler = CpuSampler([server_pid])
    sampler.start()
    req0 = origin_requests(origin)
    results: list[PlayerStats] = []
    client_cpu = 0.0
    for c in pipes:
        if not c.poll(seconds + 60):
            raise TimeoutError("a player process did not finish")
        rows, cpu = c.recv()
        client_cpu += cpu
        for parts, errors, lags, ttfb in rows:
            st = PlayerStats(parts=parts, errors=errors)
            st.lags, st.ttfb = lags, ttfb
            results.append(st)
    cpu, wall = sampler.stop()
    requests = origin_requests(origin) - req0
    for p in children:
        p.join(5)
    behind = 0
    lags_all: list[float] = []
    ttfb_all: list[float] = []
    for s in results:
        lags = s.lags[5:] or s.lags
        lags_all += lags
        ttfb_all += s.ttfb
        p95 = pct(lags, 95) if lags else float("inf")
        if p95 > BEHIND_LAG or s.parts == 0:
            behind += 1
    busy = cpu / wall
    per_viewer = max(0.0, busy - idle) / n  # core-seconds per viewer-second
    return [n, f"{100 * busy:.0f}", f"{1000 * per_viewer:.2f}",
            f"{1 / per_viewer:.0f}" if per_viewer > 0 else "-",
            f"{requests / wall:.0f}", f"{1e6 * cpu / max(requests, 1):.0f}",
            f"{1000 * pct(ttfb_all, 50):.1f}" if ttfb_all else "-",
            f"{1000 * pct(ttfb_all, 99):.1f}" if ttfb_all else "-",
            f"{statistics.median(lags_all):.2f}" if lags_all else "-",
            f"{pct(lags_all, 95):.2f}" if lags_all else "-",
            behind, sum(s.errors for s in results),
            f"{100 * client_cpu / seconds:.0f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--players", default="50,100,200")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--edge", action="store_true", help="also run through nginx (edge)")
    ap.add_argument("--preload", action="store_true", help="players request preload hints")
    args = ap.parse_args()
    counts = [int(x) for x in args.players.split(",")]
    print_system_info()
    print(f"uptime: {os.getloadavg()} (shared machine: other work competes for both cores)")
    src = make_source(gop_seconds=2, duration=60)
    env_backup = dict(os.environ)
    os.environ.setdefault("HEARTH_HLS_MAX_BLOCKING", "20000")
    os.environ.setdefault("HEARTH_LOG_LEVEL", "WARNING")
    try:
        with hearth_server() as srv:
            pin(tree_pids(srv.proc.pid), 0)
            created = srv.create_stream("viewers bench")
            sid = created["id"]
            pub = start_publisher(src, srv.rtmp_url(created["stream_key"]), loop=True)
            try:
                pin([pub.pid], 1)
                wait_http_ok(f"{srv.base}/hls/{sid}/media.m3u8", timeout=30)
                time.sleep(3)
                idle = baseline(srv.proc.pid)
                print(f"\norigin CPU with no players (ingest + packaging): {100 * idle:.1f} %")
                headers = ["players", "origin CPU %", "CPU ms/viewer·s over idle",
                           "viewers/core (proj.)", "origin req/s", "CPU µs/req",
                           "part TTFB p50 ms", "p99 ms", "lag p50 s", "lag p95 s", "behind",
                           "errors", "client CPU %"]
                print(f"\n## origin direct ({'preload hints' if args.preload else 'no preload'})")
                rows = [run_step(srv.base, sid, n, args.seconds, args.procs, args.preload,
                                 srv.proc.pid, idle, srv.base) for n in counts]
                print_table(headers, rows)
                if args.edge:
                    with nginx_edge(f"127.0.0.1:{srv.http_port}") as edge:
                        pin(tree_pids(edge.proc.pid), 1)
                        print("\n## through the nginx edge (deploy/nginx-edge.conf, on CPU 1)")
                        rows = [run_step(edge.base, sid, n, args.seconds, args.procs,
                                         args.preload, srv.proc.pid, idle, srv.base)
                                for n in counts]
                        print_table(headers, rows)
            finally:
                terminate(pub)
    finally:
        os.environ.clear()
        os.environ.update(env_backup)


if __name__ == "__main__":
    main()
