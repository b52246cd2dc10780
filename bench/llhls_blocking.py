"""B7: release time of N parked LL-HLS blocking playlist requests (prints numbers, no asserts).

Method. The real ``hearth serve`` runs on loopback with the bench source looped by
``ffmpeg -re -c copy`` (3 Mbit/s, default 333 ms parts). ``--procs`` client processes
(multiprocessing, fork), each with its own asyncio loop and one aiohttp session
(``TCPConnector(limit=0)``), first open their share of the N keep-alive connections (one plain
playlist GET each), so a round measures release, not TCP setup. Per round the parent reads the
preload hint ``part-M-I`` and tells every worker to park its requests on
``_HLS_msn=M&_HLS_part=I+3`` (about one second ahead, so all N are parked before that part
lands). Each worker stamps every response's arrival (body read) with
``time.monotonic_ns()``.

Reported per round and as p50/max over the rounds:

- (a) *per-process spread*: in each client process, last arrival − first arrival (the first
  response stands in for the landing instant); the maximum over processes. Needs no clock
  alignment, but misses the skew between processes;
- (b) *global spread*: last − first arrival over all processes. CLOCK_MONOTONIC is
  system-wide on Linux, so the processes' stamps are directly comparable;
- server CPU milliseconds used during the round (``CpuSampler`` on the server process, from
  "parked" to "all released"; includes parking and any other work, e.g. ingest).

Caveats: it is client-inclusive (response parsing in the clients, the kernel's loopback
path), and client and server share 2 cores, so client processes compete with the server;
with 4 clients the clients are not the single-loop bottleneck any more, but they still steal
CPU. The first response arrives only after the server has run ``release()`` and written at
least one response, so (b) underestimates the true "part landed → last write" by that
first write (tens of µs). Env caps are raised for the run (``HEARTH_HLS_MAX_BLOCKING``,
``…_PER_IP``, ``HEARTH_HTTP_MAX_CONNECTIONS_PER_IP``).

    /tmp/hv/bin/python bench/llhls_blocking.py [--n 1000] [--rounds 5] [--procs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CpuSampler,
    hearth_server,
    make_source,
    pct,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
    wait_http_ok,
)

HINT_RE = re.compile(r'PRELOAD-HINT:TYPE=PART,URI="part-(\d+)-(\d+)\.m4s"')
PARTS_AHEAD = 3
ROUND_TIMEOUT_S = 15.0


# --------------------------------------------------------------------------- client processes


def worker(conn: Connection, url: str, n: int) -> None:
    """Client process: one loop, one session; commands from the parent over ``conn``."""
    asyncio.run(_worker(conn, url, n))


async def _worker(conn: Connection, url: str, n: int) -> None:
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=ROUND_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def warm() -> None:
            async with http.get(url) as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(n)), return_exceptions=True)
        conn.send(("ready", None))
        while True:
            cmd, arg = await loop.run_in_executor(None, conn.recv)
            if cmd == "stop":
                return
            arrivals: list[int] = []
            statuses: list[int] = []

            tasks = [asyncio.create_task(_one(http, arg, arrivals, statuses)) for _ in range(n)]
            await asyncio.sleep(0)  # let every request start before reporting "parked"
            conn.send(("sent", time.monotonic_ns()))
            await asyncio.gather(*tasks)
            conn.send(("done", (arrivals, statuses)))


async def _one(
    http: aiohttp.ClientSession, q: str, arrivals: list[int], statuses: list[int]
) -> None:
    """One parked request; stamps the arrival of its complete response."""
    try:
        async with http.get(q) as r:
            await r.read()
            arrivals.append(time.monotonic_ns())
            statuses.append(r.status)
    except (aiohttp.ClientError, TimeoutError):
        statuses.append(0)


# --------------------------------------------------------------------------- parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=1000, help="parked requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--procs", type=int, default=4, help="client processes")
    args = ap.parse_args()
    n = max(1, min(args.n, 5000))
    rounds = max(1, min(args.rounds, 20))
    procs = max(1, min(args.procs, 16))
    os.environ["HEARTH_HLS_MAX_BLOCKING"] = str(n + 100)
    os.environ["HEARTH_HLS_MAX_BLOCKING_PER_IP"] = str(n + 100)
    os.environ["HEARTH_HTTP_MAX_CONNECTIONS_PER_IP"] = str(n + 200)
    os.environ.setdefault("HEARTH_LOG_LEVEL", "WARNING")
    print_system_info()
    src = make_source()
    with hearth_server() as srv:
        created = srv.create_stream("b7")
        pub = start_publisher(src, srv.rtmp_url(created["stream_key"]), loop=True)
        try:
            run(srv.base, created["id"], srv.proc.pid, n, rounds, procs)
        finally:
            terminate(pub)


def run(base: str, sid: str, server_pid: int, n: int, rounds: int, procs: int) -> None:
    import urllib.request

    def fetch(u: str) -> tuple[str, str]:
        with urllib.request.urlopen(u, timeout=5) as r:
            return r.geturl(), r.read().decode()

    wait_http_ok(f"{base}/hls/{sid}/media.m3u8", timeout=20)
    url = f"{base}/hls/{sid}/media.m3u8"  # the same URL for every player (no session token)
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    ctx = mp.get_context("fork")
    pipes: list[Connection] = []
    children = []
    for share in shares:
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=worker, args=(child_end, url, share), daemon=True)
        p.start()
        children.append(p)
        pipes.append(parent_end)
    rows: list[list[object]] = []
    per_proc_all: list[float] = []
    global_all: list[float] = []
    try:
        for c in pipes:
            if not c.poll(30):
                raise TimeoutError("client process did not warm up")
            c.recv()
        sampler = CpuSampler([server_pid])
        for rnd in range(rounds):
            _, text = fetch(url)
            m = HINT_RE.search(text)
            if m is None:
                print("# no preload hint in the playlist; stopping")
                break
            q = f"{url}?_HLS_msn={m[1]}&_HLS_part={int(m[2]) + PARTS_AHEAD}"
            for c in pipes:
                c.send(("round", q))
            for c in pipes:
                c.recv()  # "sent"
            sampler.start()
            results = []
            for c in pipes:
                if not c.poll(ROUND_TIMEOUT_S + 5):
                    raise TimeoutError("round did not finish")
                results.append(c.recv()[1])
            cpu_s, _wall = sampler.stop()
            arrivals = [a for arr, _ in results for a in arr]
            ok = sum(1 for _, st in results for s in st if s == 200)
            if not arrivals:
                continue
            per_proc = max((max(a) - min(a)) / 1e6 for a, _ in results if a)
            glob = (max(arrivals) - min(arrivals)) / 1e6
            per_proc_all.append(per_proc)
            global_all.append(glob)
            rows.append([rnd + 1, f"{ok}/{n}", per_proc, glob, cpu_s * 1000])
            time.sleep(0.5)
        for c in pipes:
            c.send(("stop", None))
    finally:
        for p in children:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    print(f"# N={n} parked requests, {procs} client processes, {rounds} rounds; ms")
    print_table(
        ["round", "200s", "(a) per-proc spread", "(b) global spread", "server CPU ms"], rows
    )
    print()
    print_table(
        ["metric", "p50 ms", "max ms", "target"],
        [
            ["(a) per-process first→last", pct(per_proc_all, 50), max(per_proc_all or [0.0]),
             "≤ 15 (ambitious), ≤ 50 (baseline)"],
            ["(b) global first→last (CLOCK_MONOTONIC)", pct(global_all, 50),
             max(global_all or [0.0]), "≤ 15 (ambitious), ≤ 50 (baseline)"],
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
