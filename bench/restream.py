"""Simulcast cost (issue 16 §1): server CPU per restream target at 3 Mbit/s.

One ``ffmpeg -re -c copy`` publisher of the 3 Mbit/s source (performance.md §7) into

* Hearth with 0, 1 and 3 restream targets (``hearth channel restream add``), and
* nginx-rtmp with 0, 1 and 3 ``push`` directives (its own relay, the peer),

all targets being one sink nginx-rtmp (live, no HLS) on loopback. After a warm-up the
server's CPU time (user+sys, every thread; nginx: master and worker) is sampled for
``--duration`` seconds. "per target" is (CPU with N targets − CPU with 0) / N; Hearth's
0-target figure is the cost of one ingest (RTMP in, LL-HLS packaging) — the issue's target
is a restream target costing no more than that. nginx's 0-target figure is a bare relay
(no HLS), so compare the per-target columns, not the totals.

Prints numbers, never asserts. Usage::

    python bench/restream.py [--duration 15] [--targets 0,1,3] [--quick] [--no-pin]

With two or more cores the server is pinned to core 0 and the publisher and the sink to the
others (``taskset``). The sink/peer nginx comes from ``tests/helpers/nginx_rtmp.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CpuSampler,
    hearth_server,
    make_source,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
)
from bench.ingest_cpu import _cpus, pin
from tests.helpers.nginx_rtmp import NginxRtmp, unavailable

WARMUP_S = 4.0


@dataclass
class Row:
    server: str
    targets: int
    server_pct: float
    per_target_pct: float = float("nan")
    target_kbps: str = ""
    note: str = ""


@dataclass
class Server:
    pid: int
    rtmp_url: str
    kbps: object  # () -> str: the targets' bitrates as the server reports them


def _sample(server: Server, src: Path, duration: float, load_pids: list[int]) -> float:
    cpus = _cpus()
    pub = start_publisher(src, server.rtmp_url, loop=True)
    try:
        time.sleep(WARMUP_S)
        pin([server.pid], cpus[:1], tree=True)
        pin([pub.pid, *load_pids], cpus[1:] or cpus[:1], tree=True)
        sampler = CpuSampler([server.pid], tree=True)
        sampler.start()
        end = time.monotonic() + duration
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            sampler.sample()
        cpu_s, wall = sampler.stop()
        if pub.poll() is not None:
            raise RuntimeError("the publisher exited")
        return 100.0 * cpu_s / wall
    finally:
        terminate(pub, timeout=5)


@contextlib.contextmanager
def hearth(n: int, sink: NginxRtmp) -> Iterator[Server]:
    with hearth_server() as h:
        channel = json.loads(h.cli("channel", "create", "--title", f"restream {n}", "--json"))
        for i in range(n):
            h.cli("channel", "restream", "add", channel["id"],
                  f"rtmp://127.0.0.1:{sink.rtmp_port}/live/hearth{n}x{i}")

        def kbps() -> str:
            out = json.loads(h.cli("channel", "restream", "list", channel["id"], "--json"))
            return " ".join(f"{t['bitrate_kbps']:.0f}({t['state']},-{t['frames_dropped']})"
                            for t in out)

        yield Server(h.proc.pid, h.rtmp_url(channel["stream_key"]), kbps)


@contextlib.contextmanager
def nginx_push(n: int, sink: NginxRtmp) -> Iterator[Server]:
    origin = NginxRtmp(hls=False, push=[f"rtmp://127.0.0.1:{sink.rtmp_port}/live/nginx{n}x{i}"
                                        for i in range(n)]).start()
    try:
        assert origin.proc is not None
        yield Server(origin.proc.pid, f"rtmp://127.0.0.1:{origin.rtmp_port}/live/src",
                     lambda: "")
    finally:
        origin.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=15.0, help="sampling window in s")
    ap.add_argument("--targets", default="0,1,3", help="comma-separated target counts")
    ap.add_argument("--quick", action="store_true", help="6 s window")
    ap.add_argument("--no-pin", action="store_true", help="do not taskset")
    args = ap.parse_args(argv)
    if args.no_pin:
        import bench.ingest_cpu as ic
        ic.PIN = False
    duration = 6.0 if args.quick else args.duration
    counts = [int(x) for x in args.targets.split(",") if x.strip()]
    reason = unavailable()
    if reason:
        print(f"# cannot run: {reason}")
        return 1

    print_system_info()
    print(f"# uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if not args.no_pin and len(_cpus()) >= 2:
        print(f"# pinned: server on CPU {_cpus()[0]}, publisher and sink on CPUs {_cpus()[1:]}")
    src = make_source()
    print(f"# source {src.name}; warm-up {WARMUP_S:.0f} s, window {duration:.0f} s; "
          "CPU = user+sys of the server process tree")

    sink = NginxRtmp(hls=False).start()
    rows: list[Row] = []
    try:
        assert sink.proc is not None
        for name, factory in (("hearth", hearth), ("nginx-rtmp push", nginx_push)):
            base: float | None = None
            for n in counts:
                print(f"## {name}: {n} target(s) ...", flush=True)
                try:
                    with factory(n, sink) as server:
                        pct = _sample(server, src, duration, [sink.proc.pid])
                        rates = server.kbps() if n else ""  # type: ignore[operator]
                    row = Row(name, n, pct, target_kbps=str(rates))
                    if n == 0:
                        base = pct
                    elif base is not None:
                        row.per_target_pct = (pct - base) / n
                except Exception as e:  # report and go on
                    row = Row(name, n, float("nan"), note=f"FAILED: {str(e).splitlines()[0]}")
                rows.append(row)
                print(f"   {row.server_pct:.1f}% of a core; per target "
                      f"{row.per_target_pct:.2f}%; {row.target_kbps} {row.note}", flush=True)
    finally:
        sink.close()

    hearth_ingest = next((r.server_pct for r in rows if r.server == "hearth" and r.targets == 0),
                         float("nan"))
    print("\nCPU as % of one core (user+sys); 3 Mbit/s source")
    print_table(["server", "targets", "server total %", "per target %",
                 "target kbit/s (state,-dropped)", "note"],
                [[r.server, r.targets, r.server_pct, r.per_target_pct, r.target_kbps, r.note]
                 for r in rows])
    print(f"\nOne Hearth ingest (RTMP in + LL-HLS, 0 targets): {hearth_ingest:.1f}% of a core; "
          "goal: a restream target costs no more than that.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
