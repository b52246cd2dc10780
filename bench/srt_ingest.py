"""SRT ingest (issue 16 §3): publish → LL-HLS latency over SRT beside RTMP, in one run.

Method. One ``hearth serve --srt``, three channels. The clock-stripe publisher of
``bench/latency_glass.py`` (raw frames stamped with the wall clock, x264 ultrafast
zerolatency, 30 fps, 1 s GOP, AAC) pushes to one channel over RTMP (``-f flv``) and, from a
second and third ffmpeg at the same time, to two others over SRT (``-f mpegts
srt://…?streamid=KEY``, SRT latency 120 ms: libsrt's default and ``[srt] latency_ms``), once
with ffmpeg's default mpegts settings and once with ``-pes_payload_size 0``. Per channel a
poller reads the LL-HLS media playlist every 20 ms; when a segment's first (independent) part
is listed, at wall time T, it downloads init + that part and decodes the first frame's stamp S:

- ``publish → LL-HLS`` = T − S: the earliest a low-latency player could fetch that frame
  (encoder + muxer + transport + Hearth's packaging + the part duration), not glass-to-glass
  (``bench/latency_glass.py`` adds the player);
- ``publish → server`` = EXT-X-PROGRAM-DATE-TIME − S: the transport's share. The muxer
  derives PDT from the arrival of the stream's first sample plus media time, so this is the
  first frame's arrival delay (constant over a run). SRT holds every packet for its latency
  window (TSBPD) before delivering it, and a video PES ends only when the next one starts.

Prints p50/p95 per protocol; never asserts. Note the machine load (printed ``uptime``).

    python bench/srt_ingest.py [--measure 30]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hearth_server, http_get, print_system_info, print_table
from bench.latency_glass import StripePublisher, decode_stamp

VARIANTS: dict[str, tuple[str, ...]] = {
    "RTMP": (),
    "SRT": (),
    "SRT, -pes_payload_size 0": ("-pes_payload_size", "0"),
}
"""ffmpeg's mpegts muxer gathers audio into PES packets of at least 2930 bytes by default
(about 0.37 s of 64 kbit/s AAC); ``-pes_payload_size 0`` sends each AAC frame at once."""
PART_RE = re.compile(r'#EXT-X-PART:DURATION=[0-9.]+,URI="(part-\d+-0\.m4s)",INDEPENDENT=YES')


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pdt_of(text: str, part_uri: str) -> float | None:
    """EXT-X-PROGRAM-DATE-TIME of the segment whose first part is ``part_uri``."""
    pdt = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
        elif part_uri in line:
            return pdt
    return None


class Follower(threading.Thread):
    """Polls one media playlist; records (T − S, PDT − S) per segment start."""

    def __init__(self, playlist_url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = playlist_url
        self.base = playlist_url.rsplit("/", 1)[0]
        self.stop_event = stop
        self.seen: set[str] = set()
        self.to_hls: list[float] = []
        self.to_server: list[float] = []
        self.measuring = False

    def run(self) -> None:
        while not self.stop_event.is_set():
            status, body = http_get(self.url, timeout=2.0)
            now = time.time()
            if status == 200:
                text = body.decode(errors="replace")
                for uri in PART_RE.findall(text):
                    if uri not in self.seen:
                        self.seen.add(uri)
                        if self.measuring:
                            self._sample(text, uri, now)
            time.sleep(0.02)

    def _sample(self, text: str, uri: str, listed_at: float) -> None:
        maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
        if not maps:
            return
        init = http_get(f"{self.base}/{maps[-1]}")[1]
        part = http_get(f"{self.base}/{uri}")[1]
        with contextlib.suppress(Exception), av.open(io.BytesIO(init + part), "r") as c:
            for frame in c.decode(video=0):
                ms = decode_stamp(frame.to_ndarray(format="gray"))
                if ms is not None:
                    self.to_hls.append(listed_at - ms / 1000)
                    pdt = _pdt_of(text, uri)
                    if pdt is not None:
                        self.to_server.append(pdt - ms / 1000)
                break


def _pcts(xs: list[float]) -> tuple[float, float]:
    if not xs:
        return float("nan"), float("nan")
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return statistics.median(xs), p95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--measure", type=float, default=30.0)
    args = ap.parse_args(argv)
    print_system_info()
    print(f"# uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    port = _free_udp_port()
    stop = threading.Event()
    with hearth_server(("--srt", f"127.0.0.1:{port}")) as srv:
        streams = {name: srv.create_stream(name) for name in VARIANTS}
        pubs = {}
        for name, s in streams.items():
            if name == "RTMP":
                pubs[name] = StripePublisher(srv.rtmp_url(s["stream_key"]))
            else:
                pubs[name] = StripePublisher(
                    f"srt://127.0.0.1:{port}?streamid={s['stream_key']}", fmt="mpegts",
                    output_args=VARIANTS[name])
        followers = {name: Follower(srv.playlist_url(s["id"]), stop)
                     for name, s in streams.items()}
        try:
            for f in followers.values():
                f.start()
            time.sleep(args.warmup)
            for f in followers.values():
                f.measuring = True
            time.sleep(args.measure)
        finally:
            stop.set()
            for f in followers.values():
                f.join(timeout=5)
            for p in pubs.values():
                p.stop()
    rows = []
    for name, f in followers.items():
        hls50, hls95 = _pcts(f.to_hls)
        srv50, srv95 = _pcts(f.to_server)
        rows.append([name, len(f.to_hls), hls50, hls95, srv50, srv95])
    print("\nSeconds from a frame's wall-clock stamp (p50 / p95 over segment starts)")
    print_table(["ingest", "samples", "publish→LL-HLS p50", "p95", "publish→server p50",
                 "p95"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
