"""WHIP ingest beside RTMP ingest, in one run: glass-to-glass latency to LL-HLS and to WHEP
(Chromium), and the appliance's CPU per ingest.

Method: the clock-stripe frames of ``bench/latency_glass.py`` (30 fps, 320x240, the wall
clock in the picture) are encoded once per publisher by ffmpeg (x264 ultrafast/zerolatency,
1 s GOP, no B-frames; a sine tone) and published

* over RTMP (``-f flv``, AAC audio), as OBS would, and
* over WHIP: ffmpeg sends RTP (H.264 packetization-mode 1, Opus) to werift
  (``tests/js/whip_publisher.mjs``, an independent WebRTC stack), which publishes it to
  ``/whip/{channel}`` with the channel key as bearer token. The relay hop (loopback UDP and
  one Node.js event loop) is part of the WHIP figure; a browser publishing its own camera
  (the go-live page) has no such hop but its own encoder pacing.

Each publisher feeds its own channel of the same ``hearth serve``. For each, the appliance's
CPU time (process tree) is sampled over ``--cpu`` seconds with no viewer (ingest + LL-HLS
packaging; for WHIP also SRTP, frame reassembly and the Opus → AAC transcode), then Chromium
plays ``/watch/{id}?mode=llhls`` and ``?mode=webrtc`` and every presented frame's stamp is
decoded (``requestVideoFrameCallback``). Publisher and player share the host clock. Prints
numbers, never asserts; the machine is shared, so read them with ``uptime`` in mind.

    python bench/whip.py [--quick] [--warmup 6] [--measure 15] [--cpu 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO,
    hearth_server,
    need,
    pct,
    print_system_info,
    print_table,
    proc_cpu_seconds,
    terminate,
    tree_pids,
)
from bench.latency_glass import (
    FPS,
    HEIGHT,
    WIDTH,
    StripePublisher,
    measure_page,
    stripe_publisher,
    wait_segments,
)
from tests.helpers.browser import CHROMIUM, chromium_page

WERIFT_PUBLISHER = REPO / "tests" / "js" / "whip_publisher.mjs"


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StripeRtpPublisher(StripePublisher):
    """The clock-stripe source encoded to RTP (H.264 + Opus) on two loopback UDP ports."""

    def __init__(self, video_port: int, audio_port: int) -> None:
        # Not StripePublisher.__init__: only the ffmpeg command differs.
        need("ffmpeg")
        cmd = [
            "ffmpeg", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "gray", "-video_size", f"{WIDTH}x{HEIGHT}",
            "-framerate", str(FPS), "-i", "pipe:0",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0", "-bf", "0",
            "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-b:v", "800k",
            "-f", "rtp", "-payload_type", "96", f"rtp://127.0.0.1:{video_port}?pkt_size=1200",
            "-map", "1:a", "-c:a", "libopus", "-ac", "2", "-b:a", "64k",
            "-f", "rtp", "-payload_type", "111", f"rtp://127.0.0.1:{audio_port}?pkt_size=1200",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self._stop = threading.Event()
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name="stripe-rtp", daemon=True)
        self._thread.start()


@contextlib.contextmanager
def whip_publisher(url: str, key: str, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """werift publishing to ``url``, relaying the stripe source's RTP."""
    node = shutil.which("node")
    if node is None or not (REPO / "tests" / "js" / "node_modules" / "werift").is_dir():
        raise SystemExit("[bench] needs node and werift (scripts/install-test-deps.sh)")
    vport, aport = _udp_port(), _udp_port()
    relay = subprocess.Popen([node, str(WERIFT_PUBLISHER), url, key, str(vport), str(aport),
                              str(seconds)], stdout=subprocess.PIPE, text=True)
    source: StripeRtpPublisher | None = None
    try:
        assert relay.stdout is not None
        answer = json.loads(relay.stdout.readline())
        if answer.get("status") != 201:
            raise RuntimeError(f"WHIP publish refused: {answer}")
        relay.stdout.readline()  # listening
        source = StripeRtpPublisher(vport, aport)
        yield relay
    finally:
        if source is not None:
            source.stop()
        terminate(relay, timeout=3)  # type: ignore[arg-type]


def cpu_share(pid: int, seconds: float) -> float:
    """Cores used by the appliance's process tree over ``seconds`` (1.0 = one core)."""
    def total() -> float:
        return sum(proc_cpu_seconds(p) for p in tree_pids(pid))

    c0, t0 = total(), time.monotonic()
    time.sleep(seconds)
    return (total() - c0) / (time.monotonic() - t0)


def run(warmup: float, measure: float, cpu_s: float,
        ingests: tuple[str, ...] = ("rtmp", "whip")) -> list[list[object]]:
    os.environ["HEARTH_WEBRTC_ENABLED"] = "1"
    os.environ["HEARTH_WEBRTC_PUBLIC_IP"] = "127.0.0.1"
    os.environ.setdefault("HEARTH_LOG_LEVEL", "WARNING")
    rows: list[list[object]] = []
    with hearth_server() as srv:
        idle = cpu_share(srv.proc.pid, min(cpu_s, 5.0))
        rows.append(["(no publisher)", "-", "-", "-", "-", "-", f"{idle * 100:.1f} %"])
        for ingest in ingests:
            created = srv.create_stream(f"glass-{ingest}")
            sid, key = created["id"], created["stream_key"]
            span = warmup * 2 + measure * 2 + cpu_s + 40
            ctx: Any = (stripe_publisher(srv.rtmp_url(key)) if ingest == "rtmp" else
                        whip_publisher(f"{srv.base}/whip/{sid}", key, span))
            with ctx:
                wait_segments(srv.playlist_url(sid), 3, 30)
                cpu = cpu_share(srv.proc.pid, cpu_s) - idle
                print(f"[bench] {ingest}: ingest CPU {cpu * 100:.1f} %", file=sys.stderr,
                      flush=True)
                with chromium_page() as page:
                    for mode in ("llhls", "webrtc"):
                        print(f"[bench] {ingest} → {mode}", file=sys.stderr, flush=True)
                        r = measure_page(page, f"{srv.base}/watch/{sid}?mode={mode}",
                                         warmup, measure)
                        page.goto("about:blank")
                        s = r["samples"]
                        rows.append([f"{ingest.upper()} → {mode}", len(s), pct(s, 50),
                                     pct(s, 95), r["bad"],
                                     r["first_frame"] if r["first_frame"] else "-",
                                     f"{cpu * 100:.1f} %"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="4 s warm-up, 8 s measurement")
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--measure", type=float, default=15.0)
    ap.add_argument("--cpu", type=float, default=10.0,
                    help="seconds of CPU sampling per ingest (no viewers)")
    ap.add_argument("--ingests", nargs="+", default=["rtmp", "whip"], choices=["rtmp", "whip"],
                    help="which publishers, in this order (the box's load drifts during a run)")
    args = ap.parse_args()
    warmup, measure = (4.0, 8.0) if args.quick else (args.warmup, args.measure)
    if CHROMIUM is None:
        sys.exit("[bench] chromium not found")
    print_system_info()
    print(f"# load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1/5 min), "
          f"{os.cpu_count()} cores")
    t0 = time.monotonic()
    rows = run(warmup, measure, args.cpu, tuple(args.ingests))
    print(f"# glass-to-glass seconds; warm-up {warmup:g} s, measured {measure:g} s per player;"
          f" CPU = appliance process tree above idle, per ingest, no viewers;"
          f" total run {time.monotonic() - t0:.0f} s")  # fmt: skip
    print_table(["publisher → player", "frames", "p50 s", "p95 s", "misread", "1st frame s",
                 "ingest CPU"], rows)  # fmt: skip


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
