"""Shared helpers for Hearth's benchmark scripts (performance.md §7).

The benchmarks print numbers and never assert. Everything runs on loopback; every loop is
bounded in count and time. Run them from the repo root, e.g. ``python bench/ingest_startup.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Config overrides for benchmark runs of Hearth (HEARTH_<SECTION>_<KEY>, see appliance/config.py).
BENCH_ENV = {
    "HEARTH_RTMP_MAX_CONNECTIONS": "1000",
    "HEARTH_RTMP_MAX_CONNECTIONS_PER_IP": "1000",
    "HEARTH_RTMP_CONNECTS_PER_IP_PER_SECOND": "1000",
    "HEARTH_HTTP_MAX_CONNECTIONS_PER_IP": "10000",
}


# --------------------------------------------------------------------------- source media


def make_source(gop_seconds: int = 2, duration: int = 60, force: bool = False) -> Path:
    """The deterministic source of performance.md §7, cached under bench/out/.

    720p30, 3 Mbit/s CBR, ``gop_seconds`` GOP, no B-frames, AAC 128k, FLV container.
    """
    need("ffmpeg")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    gop = 30 * gop_seconds
    out = OUT_DIR / f"src_720p30_3M_gop{gop_seconds}s_{duration}s.flv"
    if out.exists() and out.stat().st_size > 0 and not force:
        return out
    tmp = out.with_suffix(".tmp.flv")
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(duration),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "3000k",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
        "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k",
        "-f", "flv", str(tmp),
    ]  # fmt: skip
    print(f"[bench] generating {out.name} (one-off, ~{duration // 4}-{duration} s) ...", flush=True)
    subprocess.run(cmd, check=True)
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------- environment


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"[bench] '{tool}' not found; run scripts/install-test-deps.sh")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct free ports (all sockets held open until every port is chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_tcp(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body); status 0 on connection errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), b""
    except (OSError, ValueError):
        return 0, b""


def wait_http_ok(
    url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> float:
    """Poll until GET url is 200; returns seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was up")
        if http_get(url, timeout=1.0)[0] == 200:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise TimeoutError(f"{url} not 200 after {timeout} s")


def playlist_has_segment(body: bytes) -> bool:
    """True when an m3u8 lists at least one media segment (or an LL-HLS part)."""
    text = body.decode("utf-8", "replace")
    if "#EXTM3U" not in text:
        return False
    return "#EXTINF" in text or "#EXT-X-PART:" in text or "#EXT-X-STREAM-INF" in text


def system_info() -> dict[str, str]:
    info = {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
    }
    with contextlib.suppress(Exception):
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
        info["ffmpeg"] = out.split("\n", 1)[0].split(" ")[2]
    with contextlib.suppress(Exception):
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
        info["nginx"] = out.strip().split("/")[-1]
    for mod in ("aiohttp", "av", "aiortc"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            info[mod] = version(mod)
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def print_system_info() -> None:
    print("# " + ", ".join(f"{k}={v}" for k, v in system_info().items()))


# --------------------------------------------------------------------------- statistics


def pct(values: Sequence[float], q: float) -> float:
    """Percentile with linear interpolation (q in 0..100); nan for no data."""
    if not values:
        return float("nan")
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(values: Sequence[float]) -> str:
    if not values:
        return "n=0"
    return (
        f"n={len(values)} p50={pct(values, 50):.3f} p95={pct(values, 95):.3f} "
        f"min={min(values):.3f} max={max(values):.3f} mean={statistics.fmean(values):.3f}"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    for i, r in enumerate(cells):
        padded = [
            c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        print("  ".join(padded))
        if i == 0:
            print(line)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return "-" if c != c else f"{c:.3f}"  # nan -> "-"
    return str(c)


# --------------------------------------------------------------------------- CPU sampling


def proc_cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of a process (threads included), children excluded."""
    try:
        import psutil  # type: ignore[import-not-found,import-untyped,unused-ignore]

        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except ImportError:
        pass
    data = Path(f"/proc/{pid}/stat").read_text()
    # comm may contain spaces/parens: split after the last ')'.
    fields = data.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14, 15 in proc(5)
    return (utime + stime) / CLK_TCK


def run_ns(pids: list[int]) -> int:
    """Nanoseconds the threads of ``pids`` have spent on a CPU (schedstat's first field: the
    scheduler's exact run time; user+sys time is sampled at the kernel's ticks, so work that
    wakes on a tick is charged the whole tick). Threads that ended are not counted."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total


def tree_pids(pid: int) -> list[int]:
    """pid plus all its descendants (via /proc/*/stat ppid)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        out.append(cur)
        todo.extend(children.get(cur, []))
    return out


@dataclass
class CpuSampler:
    """Measures CPU seconds used by a set of processes between start() and stop().

    Pass ``tree=True`` to include descendants (nginx master + worker) at every sample.
    """

    pids: Sequence[int]
    tree: bool = False
    _start: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _t0: float = 0.0
    _t1: float = 0.0

    def _current(self) -> dict[int, float]:
        pids: list[int] = []
        for p in self.pids:
            pids.extend(tree_pids(p) if self.tree else [p])
        out = {}
        for p in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                out[p] = proc_cpu_seconds(p)
        return out

    def start(self) -> None:
        self._start = self._current()
        self._last = dict(self._start)
        self._t0 = time.monotonic()

    def sample(self) -> None:
        """Refresh (call periodically so short-lived descendants are counted)."""
        self._last.update(self._current())

    def stop(self) -> tuple[float, float]:
        """(cpu_seconds, wall_seconds) since start()."""
        self.sample()
        self._t1 = time.monotonic()
        cpu = sum(v - self._start.get(p, 0.0) for p, v in self._last.items())
        return cpu, self._t1 - self._t0


# --------------------------------------------------------------------------- processes


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def start_publisher(
    src: Path, url: str, *, loop: bool = False, log: Path | None = None, fmt: str = "flv"
) -> subprocess.Popen[bytes]:
    """``ffmpeg -re -i src -c copy -f flv URL`` (optionally looping the file; ``fmt``
    ``mpegts`` for ``srt://`` URLs)."""
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning"]
    if loop:
        cmd += ["-stream_loop", "-1"]
    cmd += ["-re", "-i", str(src), "-c", "copy", "-f", fmt, url]
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def hearth_exe() -> list[str]:
    """How to run the hearth CLI: $HEARTH_BIN, else `hearth` next to this Python, else -m."""
    if os.environ.get("HEARTH_BIN"):
        return [os.environ["HEARTH_BIN"]]
    cand = Path(sys.executable).with_name("hearth")
    if cand.exists():
        return [str(cand)]
    if shutil.which("hearth"):
        return ["hearth"]
    return [sys.executable, "-m", "appliance"]


@dataclass
class HearthServer:
    data_dir: Path
    http_port: int
    rtmp_port: int
    proc: subprocess.Popen[bytes]
    log: Path
    startup_s: float
    exe: Sequence[str] = ()
    """The CLI it was started with (default: :func:`hearth_exe`)."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def cli(self, *args: str, timeout: float = 20.0) -> str:
        cmd = [*(self.exe or hearth_exe()), *args]
        env = {**os.environ, "HEARTH_DATA_DIR": str(self.data_dir)}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def create_stream(self, title: str = "bench") -> dict[str, str]:
        """`hearth stream create --title T --json` through the admin socket.

        The CLI finds the socket through HEARTH_DATA_DIR (set by cli()); if that is not
        honoured, retry with an explicit --data-dir.
        """
        args = ("stream", "create", "--title", title, "--json")
        try:
            out = self.cli(*args)
        except RuntimeError:
            out = self.cli(*args, "--data-dir", str(self.data_dir))
        data: dict[str, str] = json.loads(out)
        return data

    def playlist_url(self, stream_id: str) -> str:
        """The media playlist (``index.m3u8`` is the multivariant playlist that names it)."""
        return f"{self.base}/hls/{stream_id}/media.m3u8"


@contextlib.contextmanager
def hearth_server(
    extra_args: Sequence[str] = (), startup_timeout: float = 30.0,
    exe: Sequence[str] = (),
) -> Iterator[HearthServer]:
    """Run ``hearth serve`` on loopback ports with a throwaway data dir (``exe``: the CLI to
    run, default :func:`hearth_exe`)."""
    exe = tuple(exe) or tuple(hearth_exe())
    # Short path: the admin Unix socket lives in the data dir (108-byte limit).
    tmp = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    http_port, rtmp_port = free_ports(2)
    log = tmp / "hearth.log"
    cmd = [
        *exe, "serve",
        "--data-dir", str(tmp / "d"),
        "--http", f"127.0.0.1:{http_port}",
        "--rtmp", f"127.0.0.1:{rtmp_port}",
        "--no-relays", *extra_args,
    ]  # fmt: skip
    (tmp / "d").mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "HEARTH_CONFIG")}
    env["HEARTH_DATA_DIR"] = str(tmp / "d")
    # Every load-generator connection comes from 127.0.0.1: lift the per-address caps
    # (an explicit value in the caller's environment wins).
    for k, v in BENCH_ENV.items():
        env.setdefault(k, v)
    with open(log, "wb") as lf:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, env=env)
    try:
        try:
            wait_http_ok(f"http://127.0.0.1:{http_port}/healthz", startup_timeout, proc)
            wait_tcp("127.0.0.1", rtmp_port, 5.0)
        except (TimeoutError, RuntimeError) as e:
            terminate(proc)
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"hearth did not start: {e}\n--- log tail ---\n{tail}") from e
        yield HearthServer(tmp / "d", http_port, rtmp_port, proc, log, time.monotonic() - t0,
                           exe)
    finally:
        terminate(proc)
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"[bench] kept {tmp}")
