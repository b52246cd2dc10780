"""What an idle server costs: CPU and wake-ups with nothing published and nobody watching.

Hearth (and, with ``--hearth-b CMD``, a second Hearth from another checkout) and nginx-rtmp
(HLS on, the peer of bench/ingest_cpu.py) are started side by side, left to settle for
``--warmup`` seconds, then sampled over the same ``--duration`` window: CPU as % of one core,
twice (the scheduler's exact run time of all threads, from ``/proc/*/task/*/schedstat``; and
user+sys as ``top`` shows it, which the kernel samples at its ticks: a wake-up that falls on
a tick is charged the whole tick, see appliance/periodic.py), and voluntary context
switches per second (each one a wake-up of a
thread that had gone to sleep; on the event loop's thread, one per loop wake-up). An idle
appliance's wake-ups are its periodic jobs (appliance/periodic.py): on a small host they are
what it costs all day between broadcasts, and at one stream they are part of the figure of
bench/ingest_cpu.py.

Prints numbers, never asserts. Usage::

    python bench/idle.py [--duration 60] [--warmup 20] [--hearth-b CMD]
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CpuSampler,
    hearth_server,
    print_system_info,
    print_table,
    run_ns,
    tree_pids,
)
from bench.ingest_cpu import _event_loop, voluntary_switches
from bench.peers import nginx_rtmp as nginx_peer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="sampling window in s")
    ap.add_argument("--warmup", type=float, default=20.0, help="settling time in s")
    ap.add_argument("--hearth-b", metavar="CMD", default="",
                    help="a second Hearth started with CMD (another checkout), as 'hearth-b'")
    args = ap.parse_args()
    print_system_info()
    with contextlib.ExitStack() as stack:
        servers: list[tuple[str, int, str]] = []
        h = stack.enter_context(hearth_server())
        servers.append(("hearth", h.proc.pid, _event_loop(h.log) + " loop"))
        if args.hearth_b:
            b = stack.enter_context(hearth_server(exe=shlex.split(args.hearth_b)))
            servers.append(("hearth-b", b.proc.pid, _event_loop(b.log) + " loop"))
        reason = nginx_peer.available()
        if reason:
            print(f"# nginx-rtmp skipped: {reason}")
        else:
            ng = stack.enter_context(nginx_peer.nginx_rtmp())
            servers.append(("nginx-rtmp", ng.pid, ""))
        time.sleep(args.warmup)
        samplers = [CpuSampler([pid], tree=True) for _, pid, _ in servers]
        switches0 = [voluntary_switches(tree_pids(pid)) for _, pid, _ in servers]
        ns0 = [run_ns(tree_pids(pid)) for _, pid, _ in servers]
        for s in samplers:
            s.start()
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            for s in samplers:
                s.sample()
        rows = []
        for (name, pid, note), sampler, sw0, n0 in zip(servers, samplers, switches0, ns0,
                                                      strict=True):
            cpu, wall = sampler.stop()
            exact = (run_ns(tree_pids(pid)) - n0) / 1e9
            switches = (voluntary_switches(tree_pids(pid)) - sw0) / wall
            rows.append([name, 100.0 * exact / wall, 100.0 * cpu / wall, switches, note])
    print(f"\nidle, {args.duration:.0f} s window after {args.warmup:.0f} s; CPU as % of one core")
    print_table(["server", "idle CPU % (run time)", "idle CPU % (ticks, as top)",
                 "wake-ups/s (vol. switches)", "note"], rows)


if __name__ == "__main__":
    main()
