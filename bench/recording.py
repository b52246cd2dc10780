"""Recording cost: server CPU per stream and LL-HLS part latency, recording off / on / on a
stalled disk; and thumbnail CPU per stream-minute (issue 9, §Benchmarks).

Each mode runs a real appliance (``Appliance`` in a child process, so the storage seam can be
swapped for a disk that never finishes a segment write: ``stall``) fed by ``--streams`` ffmpeg
publishers (``-re -c copy`` of the 720p30 3 Mbit/s source, looped). After a warm-up the child's
CPU (all threads: the recorder's writer and the thumbnail workers included) is sampled for
``--duration`` seconds, while one LL-HLS client per stream follows the live edge with blocking
playlist reloads (``_HLS_msn``/``_HLS_part``) and records, for every new part, how long after
the part's last media instant (EXT-X-PROGRAM-DATE-TIME + part durations) it was listed.

Thumbnail CPU is measured apart: :func:`make_thumbnail` on the source's 720p segments, CPU
time per thumbnail × thumbnails per minute (every 10 s).

Prints numbers, never asserts. Usage::

    python bench/recording.py [--duration 20] [--streams 2] [--modes off,on,stall]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CpuSampler,
    free_ports,
    make_source,
    pct,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
    wait_http_ok,
)

WARMUP_S = 5.0
PART_RE = re.compile(r'#EXT-X-PART:DURATION=([0-9.]+),URI="part-(\d+)-(\d+)\.m4s"')


# --------------------------------------------------------------------------- child: the server


def serve(mode: str, data: str, http_port: int, rtmp_port: int) -> None:
    """Run an appliance with recording ``off``, ``on`` or ``on`` over a stalled disk."""
    from appliance.config import load_config
    from appliance.delivery.storage import Data, Storage
    from appliance.lifecycle import Appliance

    class StalledDisk(Storage):
        """Every segment write blocks (the recorder's backlog fills, then it stops)."""

        def write_atomic(self, path: Path, data: Data) -> None:
            if path.name.startswith("seg-"):
                time.sleep(3600)
            super().write_atomic(path, data)

    env = {"HEARTH_DATA_DIR": data, "HEARTH_HTTP_HOST": "127.0.0.1",
           "HEARTH_HTTP_PORT": str(http_port), "HEARTH_RTMP_HOST": "127.0.0.1",
           "HEARTH_RTMP_PORT": str(rtmp_port), "HEARTH_LOG_LEVEL": "WARNING",
           "HEARTH_RTMP_MAX_CONNECTIONS_PER_IP": "1000",
           "HEARTH_HTTP_MAX_CONNECTIONS_PER_IP": "10000",
           "HEARTH_RECORDING_ENABLED": "false" if mode == "off" else "true"}
    config = load_config(environ=env)

    async def main() -> None:
        storage = StalledDisk() if mode == "stall" else None
        async with Appliance(config, recording_storage=storage) as app:
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
            app.stop()

    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
    os._exit(0)  # a stalled writer thread must not hold the exit


# --------------------------------------------------------------------------- parent


def cli(data: Path, *args: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "appliance", *args, "--data-dir", str(data),
                          "--json"], capture_output=True, text=True, timeout=30, check=True)
    result: dict[str, str] = json.loads(out.stdout)
    return result


class PartClock(threading.Thread):
    """Follows one stream's live edge with blocking reloads; records part latencies."""

    def __init__(self, url: str, until: float) -> None:
        super().__init__(daemon=True)
        self.url, self.until = url, until
        self.latencies: list[float] = []
        self.errors = 0

    def run(self) -> None:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            base = r.url
            text = r.read().decode()
        seen: set[tuple[int, int]] = set()
        while time.time() < self.until:
            last = self._last_part(text)
            if last is None:
                time.sleep(0.05)
                url = base
            else:
                (msn, idx), end_at = last
                if (msn, idx) not in seen:
                    seen.add((msn, idx))
                    self.latencies.append(time.time() - end_at)
                sep = "&" if "?" in base else "?"
                url = f"{base}{sep}_HLS_msn={msn}&_HLS_part={idx + 1}"
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    text = r.read().decode()
            except OSError:
                self.errors += 1
                time.sleep(0.1)

    @staticmethod
    def _last_part(text: str) -> tuple[tuple[int, int], float] | None:
        pdt: float | None = None
        cum = 0.0
        last = None
        for line in text.splitlines():
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pdt = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")
                                             ).timestamp()
                cum = 0.0
            elif (m := PART_RE.match(line)) and pdt is not None:
                cum += float(m[1])
                last = ((int(m[2]), int(m[3])), pdt + cum)
        return last


def run_mode(mode: str, streams: int, duration: float, src: Path) -> list[object]:
    tmp = Path(tempfile.mkdtemp(prefix="hbr-", dir="/tmp"))
    data = tmp / "d"
    data.mkdir(mode=0o700)
    http_port, rtmp_port = free_ports(2)
    log = open(tmp / "serve.log", "wb")  # closed below
    server = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(data),
                               str(http_port), str(rtmp_port)], stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL)
    pubs: list[subprocess.Popen[bytes]] = []
    try:
        wait_http_ok(f"http://127.0.0.1:{http_port}/healthz", 30, server)
        urls = []
        for i in range(streams):
            s = cli(data, "stream", "create", "--title", f"rec {i}")
            pubs.append(start_publisher(src, f"rtmp://127.0.0.1:{rtmp_port}/live/"
                                             f"{s['stream_key']}", loop=True))
            urls.append(f"http://127.0.0.1:{http_port}/hls/{s['id']}/media.m3u8")
        time.sleep(WARMUP_S)
        until = time.time() + duration
        clocks = [PartClock(u, until) for u in urls]
        cpu = CpuSampler([server.pid])
        cpu.start()
        for c in clocks:
            c.start()
        while time.time() < until:
            time.sleep(1.0)
            cpu.sample()
        cpu_s, wall = cpu.stop()
        for c in clocks:
            c.join(15)
        lat = [x * 1000 for c in clocks for x in c.latencies]
        rec_dir = data / "recordings"
        on_disk = sum(f.stat().st_size for f in rec_dir.rglob("seg-*.m4s")) if rec_dir.exists() \
            else 0
        status = ""
        if mode != "off":
            with contextlib.suppress(subprocess.SubprocessError, json.JSONDecodeError):
                out = subprocess.run([sys.executable, "-m", "appliance", "status",
                                      "--data-dir", str(data), "--json"], capture_output=True,
                                     text=True, timeout=20)
                errs = json.loads(out.stdout).get("recent_errors", [])
                status = next((e["message"][:60] for e in errs
                               if e["kind"] == "recording.failed"), "")
        per_stream = 100 * cpu_s / wall / streams
        return [mode, streams, f"{per_stream:.1f}", f"{pct(lat, 50):.0f}",
                f"{pct(lat, 99):.0f}", len(lat), f"{on_disk / 1e6:.1f}", status or "-"]
    finally:
        for p in pubs:
            terminate(p, timeout=5)
        terminate(server, timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def thumbnail_cpu(src: Path, n: int = 8) -> tuple[float, int, int]:
    """CPU seconds per thumbnail of a 720p segment (decode one IDR, scale, JPEG)."""
    import av

    from appliance.delivery.thumbnails import INTERVAL_SECONDS, make_thumbnail

    # A 2 s fMP4 segment of the source, made once (ffmpeg copy → init + one fragment).
    seg = Path(tempfile.mkdtemp(prefix="hbt-")) / "s.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
                    "-t", "2", "-c", "copy", "-movflags", "frag_keyframe+empty_moov",
                    str(seg)], check=True)
    data = seg.read_bytes()
    shutil.rmtree(seg.parent, ignore_errors=True)
    make_thumbnail(data)  # warm (codec init, imports)
    t0 = time.process_time()
    for _ in range(n):
        _, w, h = make_thumbnail(data)
    per = (time.process_time() - t0) / n
    del av
    return per * 60 / INTERVAL_SECONDS, w, h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--modes", default="off,on,stall")
    ap.add_argument("--serve", nargs=4, metavar=("MODE", "DATA", "HTTP", "RTMP"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        mode, data, http, rtmp = args.serve
        serve(mode, data, int(http), int(rtmp))
        return 0
    print_system_info()
    print(f"[bench] load before: {os.getloadavg()}")
    src = make_source(gop_seconds=2, duration=60)
    rows = [run_mode(m, args.streams, args.duration, src) for m in args.modes.split(",")]
    print_table(["recording", "streams", "CPU %/stream", "part lat p50 ms",
                 "part lat p99 ms", "parts", "MB on disk", "operator sees"], rows)
    per_min, w, h = thumbnail_cpu(src)
    print(f"thumbnails: {per_min * 1000:.0f} ms CPU per stream-minute "
          f"(one {w}x{h} JPEG from a 1280x720 IDR every 10 s)")
    print(f"[bench] load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
