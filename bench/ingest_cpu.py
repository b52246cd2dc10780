"""B8 (reduced): server CPU per ingest stream (performance.md §7).

1 and 10 concurrent ``ffmpeg -re -c copy`` publishers of the 3 Mbit/s source into Hearth and
into nginx-rtmp (HLS on, 2 s fragments); with ``--protocol rtmp,srt`` also into Hearth over
SRT (``-f mpegts srt://…?streamid=KEY``, the same source remuxed by ffmpeg), in the same run.
After a warm-up, the server's CPU time (user+sys,
all threads; for nginx the master and its workers) is sampled for ``--duration`` seconds and
reported as % of one core, in total and per stream. The publishers' own CPU is reported
separately (it is load-generator cost, not server cost). Wake-ups are reported per stream per
second as the server's voluntary context switches (all threads, from /proc) and, with
``--syscalls`` (needs strace and ptrace rights), as event-loop iterations (``epoll_wait``) and
socket reads (``recvfrom``/``read``) counted by ``strace -c`` over a separate 5 s window (strace
slows the traced process, so this window is not the CPU window).

With ``--together`` the servers run at the same time and are measured over the same window
(all on core 0): on a shared machine whose speed drifts by ±20 % between minutes, their
ratio is then steadier than that of runs in turn. ``--hearth-b CMD`` adds a second Hearth
started with another command (another checkout), for before/after comparisons.

Prints numbers, never asserts. Usage::

    python bench/ingest_cpu.py [--duration 20] [--streams 1,10] [--quick] [--syscalls]
                               [--hearth-only | --nginx-only] [--no-pin] [--repeat N]
                               [--protocol rtmp,srt] [--together] [--hearth-b CMD]

On a machine with two or more cores the server (every thread, and nginx's workers) is pinned
to core 0 and the publishers to the other cores (``taskset``), so load generation does not
steal the server's core and the server's figure is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CpuSampler,
    hearth_server,
    http_get,
    make_source,
    print_system_info,
    print_table,
    run_ns,
    start_publisher,
    terminate,
    tree_pids,
)
from bench.peers import nginx_rtmp as nginx_peer

WARMUP_S = 3.0
PIN = True
SYSCALLS = False
STRACE_WINDOW_S = 5.0


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin(pids: list[int], cpus: list[int], tree: bool = False) -> None:
    """Pin every thread of ``pids`` (and with ``tree`` their children) to ``cpus``."""
    if not PIN or len(_cpus()) < 2 or not shutil.which("taskset"):
        return
    todo = list(pids)
    if tree:
        for pid in pids:
            with contextlib.suppress(OSError):
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children")
                         .read_text().split()]
    mask = ",".join(map(str, cpus))
    for pid in todo:
        subprocess.run(["taskset", "-a", "-p", "-c", mask, str(pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


@dataclass
class Row:
    server: str
    streams: int
    server_pct: float
    per_stream_pct: float
    ffmpeg_pct: float
    alive: int
    playlists: int
    note: str = ""
    vcsw: float = float("nan")
    """Voluntary context switches per stream per second (all server threads)."""
    loop_wakeups: float = float("nan")
    """epoll_wait calls per stream per second (strace window)."""
    reads: float = float("nan")
    """Socket reads (recvfrom/read) per stream per second (strace window)."""
    threads: dict[str, float] | None = None
    """% of a core per live stream by server thread name (the main thread is the loop)."""
    rss_mb: float = float("nan")
    """Resident memory of the server (all its processes) at the end of the window, MB."""
    run_time_pct: float = float("nan")
    """% of a core per live stream from the scheduler's exact run time (bench.common.run_ns)
    instead of tick-sampled user+sys."""


def voluntary_switches(pids: list[int]) -> int:
    """Sum of voluntary_ctxt_switches over every thread of ``pids``."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)",
                                  (task / "status").read_text(), re.M)
                    if m:
                        total += int(m.group(1))
    return total


def resident_mb(pids: list[int]) -> float:
    """Sum of VmRSS over ``pids``, in MB (nan if none could be read)."""
    total, seen = 0, False
    for pid in pids:
        with contextlib.suppress(OSError):
            m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
            if m:
                total, seen = total + int(m.group(1)), True
    return total / 1024 if seen else float("nan")


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds (user+sys) of every thread of ``pids``, summed by thread name."""
    out: dict[str, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    data = (task / "stat").read_text()
                    name = data[data.index("(") + 1:data.rindex(")")]
                    # Pool threads carry a counter ("asyncio_3"): one row. Python threads
                    # inherit the process name, so the main thread (the loop) is told apart
                    # by its id.
                    name = re.sub(r"[_-]?\d+$", "", name) or name
                    name = f"{name} main" if task.name == str(pid) else f"{name} other"
                    fields = data.rsplit(")", 1)[1].split()
                    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                    key = f"{pid}:{task.name}:{name}"
                    out[key] = cpu
    return out


def by_thread_name(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per thread name between two :func:`thread_cpu` samples."""
    out: dict[str, float] = {}
    for key, cpu in after.items():
        name = key.split(":", 2)[2]
        out[name] = out.get(name, 0.0) + cpu - before.get(key, 0.0)
    return out


def strace_counts(pids: list[int], seconds: float) -> dict[str, int]:
    """Syscall counts of ``pids`` (all threads) over ``seconds`` (``strace -c``), or {}."""
    if not shutil.which("strace"):
        return {}
    cmd = ["strace", "-f", "-c", "-q", "-e",
           "trace=epoll_wait,epoll_pwait,epoll_pwait2,recvfrom,read,recvmsg"]
    for pid in pids:
        cmd += ["-p", str(pid)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return {}
    counts: dict[str, int] = {}
    for line in err.splitlines():
        parts = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
            counts[parts[-1]] = int(parts[3])
    return counts


@dataclass
class Target:
    server_pid: int
    tree: bool
    rtmp_urls: list[str]
    playlist_urls: list[str]
    fmt: str = "flv"
    log: Path | None = None
    """The server's log (Hearth): a dead publisher's note quotes why the server closed it."""


def _event_loop(log: Path | None) -> str:
    """The event loop a Hearth ran on, from its start-up line (appliance/lifecycle.py)."""
    if log is None or not log.exists():
        return ""
    found = re.search(r"\(event loop: (\w+)\)", log.read_text(errors="replace"))
    return found.group(1) if found else ""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def hearth_target(n: int, protocol: str = "rtmp", exe: Sequence[str] = ()) -> Iterator[Target]:
    srt_port = _free_udp_port() if protocol == "srt" else 0
    extra = ("--srt", f"127.0.0.1:{srt_port}") if srt_port else ()
    with hearth_server(extra, exe=exe) as h:
        urls, playlists = [], []
        for i in range(n):
            s = h.create_stream(f"cpu {i}")
            path = urllib.parse.urlsplit(s.get("hls_url", "")).path
            playlists.append(h.base + (path or f"/hls/{s['id']}/index.m3u8"))
            urls.append(f"srt://127.0.0.1:{srt_port}?streamid={s['stream_key']}" if srt_port
                        else h.rtmp_url(s["stream_key"]))
        yield Target(h.proc.pid, True, urls, playlists, "mpegts" if srt_port else "flv", h.log)


@contextlib.contextmanager
def nginx_target(n: int) -> Iterator[Target]:
    with nginx_peer.nginx_rtmp() as ng:
        keys = [f"cpu{i}" for i in range(n)]
        yield Target(
            ng.pid, True, [ng.rtmp_url(k) for k in keys], [ng.playlist_url(k) for k in keys]
        )


class Run:
    """One server with its ``n`` publishers, measured over a window.

    :func:`run_together` measures one server, or several in the same window (``--together``:
    all servers on core 0), so slow phases of a shared machine hit every server alike and
    their ratio is steadier than that of two runs in turn.
    """

    def __init__(self, name: str, target_cm: contextlib.AbstractContextManager[Target],
                 n: int, src: Path) -> None:
        self.name, self.n, self.src = name, n, src
        self.target_cm = target_cm
        self.pubs: list[subprocess.Popen[bytes]] = []
        self.logdir = Path(tempfile.mkdtemp(prefix="bench-ff-"))
        self.exited: dict[int, float] = {}  # publisher index -> seconds after its start

    def start(self, stack: contextlib.ExitStack) -> None:
        """Start the server and its publishers (stopped when ``stack`` closes)."""
        self.t = stack.enter_context(self.target_cm)
        stack.callback(self._stop_publishers)
        pin([self.t.server_pid], _cpus()[:1], tree=self.t.tree)
        for i, url in enumerate(self.t.rtmp_urls):
            self.pubs.append(start_publisher(self.src, url, loop=True,
                                             log=self.logdir / f"ff{i}.log", fmt=self.t.fmt))
        self.started = time.monotonic()

    def _stop_publishers(self) -> None:
        for p in self.pubs:
            terminate(p, timeout=5)

    def begin_window(self) -> None:
        t = self.t
        # Again after warm-up: threads (workers, PyAV) started since inherit nothing.
        pin([t.server_pid], _cpus()[:1], tree=t.tree)
        pin([p.pid for p in self.pubs], _cpus()[1:])
        self.server = CpuSampler([t.server_pid], tree=t.tree)
        self.ff = CpuSampler([p.pid for p in self.pubs])
        self.server_pids = tree_pids(t.server_pid) if t.tree else [t.server_pid]
        self.vcsw0 = voluntary_switches(self.server_pids)
        self.ns0 = run_ns(self.server_pids)
        self.threads0 = thread_cpu(self.server_pids)
        self.server.start()
        self.ff.start()

    def sample(self) -> None:
        self.server.sample()
        self.ff.sample()
        for i, p in enumerate(self.pubs):
            if i not in self.exited and p.poll() is not None:
                self.exited[i] = time.monotonic() - self.started

    def end_window(self) -> Row:
        t, n, pubs = self.t, self.n, self.pubs
        cpu_s, wall = self.server.stop()
        ns = run_ns(tree_pids(t.server_pid) if t.tree else [t.server_pid]) - self.ns0
        ff_s, _ = self.ff.stop()
        rss = resident_mb(tree_pids(t.server_pid) if t.tree else [t.server_pid])
        vcsw = (voluntary_switches(self.server_pids) - self.vcsw0) / wall / n
        threads = by_thread_name(self.threads0, thread_cpu(tree_pids(t.server_pid) if t.tree
                                                           else [t.server_pid]))
        counts = strace_counts(self.server_pids, STRACE_WINDOW_S) if SYSCALLS else {}
        dead = [i for i, p in enumerate(pubs) if p.poll() is not None]
        ok = sum(http_get(u, 2.0)[0] == 200 for u in t.playlist_urls)
        closes = _server_closes(t.log) if dead else []
        note = ""
        if dead:
            lines = (self.logdir / f"ff{dead[0]}.log").read_text(
                errors="replace").strip().splitlines()
            when = self.exited.get(dead[0])
            note = (f"publisher {dead[0]} exited"
                    + (f" after {when:.0f} s" if when is not None else "")
                    + (f" (rc {pubs[dead[0]].returncode})" if pubs[dead[0]].returncode else "")
                    + f": {lines[-1][:120] if lines else '?'}")
            # Say who ended it: the server's close lines (reason after the last ':'), e.g.
            # "idle-deadline", "unread-replies", "ok" (the publisher closed), an ingest error.
            if closes:
                note += f"; server: {closes[0][:160]}" + (f" (+{len(closes) - 1} more)"
                                                          if len(closes) > 1 else "")
        loop = _event_loop(t.log)
        if loop:
            note = f"{loop} loop" + (f"; {note}" if note else "")
        shutil.rmtree(self.logdir, ignore_errors=True)
        alive = n - len(dead)
        server_pct = 100.0 * cpu_s / wall
        # Per stream = over the publishers still alive at the end (dead ones cost little).
        per_stream = server_pct / max(alive, 1)
        per = STRACE_WINDOW_S * n
        wakeups = sum(counts.get(k, 0) for k in ("epoll_wait", "epoll_pwait", "epoll_pwait2"))
        reads = sum(counts.get(k, 0) for k in ("recvfrom", "read", "recvmsg"))
        split = {k: 100.0 * v / wall / max(alive, 1) for k, v in threads.items() if v > 0}
        return Row(self.name, n, server_pct, per_stream, 100.0 * ff_s / wall / n, alive, ok,
                   note, vcsw=vcsw, threads=split, rss_mb=rss,
                   run_time_pct=100.0 * ns / 1e9 / wall / max(alive, 1),
                   loop_wakeups=wakeups / per if counts else float("nan"),
                   reads=reads / per if counts else float("nan"))


def run_together(runs: list[Run], duration: float) -> list[Row]:
    """Start every run, warm up, and measure them all over the same window."""
    with contextlib.ExitStack() as stack:
        for r in runs:
            r.start(stack)
        time.sleep(WARMUP_S)
        for r in runs:
            r.begin_window()
        end = time.monotonic() + duration
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            for r in runs:
                r.sample()
        return [r.end_window() for r in runs]


def _server_closes(log: Path | None) -> list[str]:
    """Hearth's log lines saying why a publishing connection ended (empty without a log)."""
    if log is None:
        return []
    with contextlib.suppress(OSError):
        lines = [line.split(" ", 3)[-1] for line in log.read_text(errors="replace").splitlines()]
        # The connection's close line (with its reason) first, then what the ingest said.
        return ([x for x in lines if " closed after " in x]
                + [x for x in lines if "ingest.disconnected" in x or "Publish.Failed" in x
                   or "ingest.malformed" in x])
    return []


def _print_row(row: Row) -> None:
    n = row.streams
    print(
        f"   {row.server}: server {row.server_pct:.1f}% of a core, "
        f"{row.per_stream_pct:.2f}%/stream; {row.vcsw:.1f} voluntary switches/stream/s; "
        f"ffmpeg {row.ffmpeg_pct:.2f}%/publisher; alive {row.alive}/{n}; "
        f"playlists {row.playlists}/{n}; resident {row.rss_mb:.0f} MB {row.note}",
        flush=True,
    )
    if row.threads:
        print("   by thread, %/stream: " + ", ".join(
            f"{k} {v:.3f}" for k, v in sorted(row.threads.items(),
                                              key=lambda kv: -kv[1])), flush=True)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--duration", type=float, default=20.0, help="sampling window in s (default 20)"
    )
    ap.add_argument(
        "--streams", default="1,10", help="comma-separated publisher counts (default 1,10)"
    )
    ap.add_argument("--quick", action="store_true", help="5 s window, 1 and 3 publishers")
    who = ap.add_mutually_exclusive_group()
    who.add_argument("--hearth-only", action="store_true")
    who.add_argument("--nginx-only", action="store_true")
    ap.add_argument("--no-pin", action="store_true", help="do not taskset server/publishers")
    ap.add_argument("--protocol", default="rtmp",
                    help="Hearth ingest protocols, comma-separated: rtmp, srt (default rtmp)")
    ap.add_argument("--syscalls", action="store_true",
                    help="count loop wake-ups and socket reads with strace (separate window)")
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="seconds of publishing before the window (default 3; Hearth's live "
                         "window fills for ~2 × hls.window segments, ~40 s, before its "
                         "memory stops growing: use 45 for the steady state)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every (server, streams) pair this many times, interleaved")
    ap.add_argument("--together", action="store_true",
                    help="run the servers at the same time and measure them over the same "
                         "window (all on core 0), instead of one after another: a shared "
                         "machine's slow phases then hit both alike")
    ap.add_argument("--hearth-b", metavar="CMD", default="",
                    help="also run a second Hearth, started with this command (e.g. a "
                         "wrapper that runs another checkout), as 'hearth-b'")
    args = ap.parse_args(argv)
    global PIN, SYSCALLS, WARMUP_S
    PIN = not args.no_pin
    WARMUP_S = args.warmup
    SYSCALLS = args.syscalls
    duration = 5.0 if args.quick else args.duration
    counts = [1, 3] if args.quick else [int(x) for x in args.streams.split(",") if x.strip()]

    print_system_info()
    print(f"# uptime: {_uptime()}")
    if PIN and len(_cpus()) >= 2:
        print(f"# pinned: server on CPU {_cpus()[0]}, publishers on CPUs {_cpus()[1:]}")
    src = make_source()
    print(f"# source {src.name}; warm-up {WARMUP_S:.0f} s, window {duration:.0f} s; CPU = user+sys")

    rows: list[Row] = []
    for n in [c for c in counts for _ in range(max(1, args.repeat))]:
        plan: list[tuple[str, contextlib.AbstractContextManager[Target]]] = []
        if not args.nginx_only:
            for proto in [p.strip() for p in args.protocol.split(",") if p.strip()]:
                plan.append(("hearth" if proto == "rtmp" else f"hearth-{proto}",
                             hearth_target(n, proto)))
        if not args.hearth_only:
            reason = nginx_peer.available()
            if reason:
                print(f"# nginx-rtmp skipped: {reason}")
            else:
                plan.append(("nginx-rtmp", nginx_target(n)))
        if args.hearth_b and not args.nginx_only:
            plan.insert(1, ("hearth-b", hearth_target(n, "rtmp", exe=shlex.split(args.hearth_b))))
        batches = [plan] if args.together else [[step] for step in plan]
        for batch in batches:
            names = " + ".join(name for name, _ in batch)
            print(f"## {names}: {n} publisher(s) each ...", flush=True)
            try:
                got = run_together([Run(name, cm, n, src) for name, cm in batch], duration)
            except Exception as e:  # report and go on
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                got = [Row(name, n, float("nan"), float("nan"), float("nan"), 0, 0,
                           f"FAILED: {first}") for name, _ in batch]
            for row in got:
                rows.append(row)
                _print_row(row)
            print(f"   # uptime: {_uptime()}", flush=True)

    print("\nCPU as % of one core (user+sys; 'run time' from the scheduler, exact); wake-ups "
          "per live stream per second")
    print_table(
        ["server", "streams", "server total %", "server %/live stream",
         "%/live stream (run time)", "vol. switches/s",
         "loop wake-ups/s", "socket reads/s", "ffmpeg %/publisher", "publishers alive",
         "playlists 200", "resident MB", "note"],
        [[r.server, r.streams, r.server_pct, r.per_stream_pct, r.run_time_pct, r.vcsw,
          r.loop_wakeups,
          r.reads, r.ffmpeg_pct, f"{r.alive}/{r.streams}", f"{r.playlists}/{r.streams}",
          r.rss_mb, r.note] for r in rows],
    )  # fmt: skip
    print(f"# uptime at the end: {_uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
