"""B2/B3/B4: glass-to-glass latency in Chromium with a clock in the picture.

Method (performance.md §7, latency method 1, "clock-stripe frames"):

- A Python thread generates raw 320x240 gray frames at 30 fps. Each frame carries the wall
  clock at the instant it is handed to the encoder (``time.time_ns() // 1_000_000``) as a
  48-cell black/white stripe: an 8 x 6 grid of 40 px cells, row-major, MSB first, holding
  the 41-bit millisecond value and a 7-bit XOR checksum (the value's 7-bit chunks XORed),
  so misread frames are rejected rather than counted.
- The frames are piped into ``ffmpeg -f rawvideo … -c:v libx264 -preset ultrafast
  -tune zerolatency -g 30 -bf 0`` with a sine tone as AAC audio, published over RTMP. The
  tone has no ``-re``: ffmpeg pulls it only as far as the pipe-paced video timeline, and the
  generator never bursts frames it missed while ffmpeg was starting. Either mistake puts
  the video timeline ahead of the audio one, and the flv muxer's interleaving then holds
  every video packet back by the difference (measured: ~260 ms). The stamp → server-arrival
  delay (EXT-X-PROGRAM-DATE-TIME vs the decoded stamp) is printed to check this.
- Chromium (Debian's, via ``tests/helpers/browser.py``) opens the player, and an evaluated
  script decodes the stripe of every presented frame with ``requestVideoFrameCallback`` +
  canvas ``getImageData`` and records ``performance.timeOrigin + expectedDisplayTime − stamp``
  (Date.now() when the metadata lacks it) for ``--measure`` seconds after ``--warmup``.
- ``llhls-srt``: a second channel fed over SRT (``-f mpegts srt://…``, ffmpeg's default
  mpegts settings) by a second stripe publisher, played like ``llhls`` (issue 16 §3).
- Players: Hearth's own page ``/watch/{id}?mode=llhls|hls|webrtc`` (LL-HLS = hls.js
  low-latency mode with catch-up, as shipped; standard HLS = hls.js ``lowLatencyMode: false``,
  3 target durations behind; WebRTC = WHEP with ``HEARTH_WEBRTC_ENABLED=1``), and nginx-rtmp
  (``hls_fragment 2s``, ``hls_playlist_length 6s``) played by the vendored hls.js with default
  settings in a tiny page served same-origin through Playwright request interception.

Publisher and player share the host clock, so there is no skew. The number includes x264
encode (zerolatency, ~1 frame), RTMP, the server, the player's buffer, decode and the
compositor's expected display time. Caveats: headless Chromium with software decode; the
player joins once (no random join times, no stall injection); 30 fps quantises the result
to ~33 ms; the measurement window is short (default 20 s), so p95 is over ~600 frames; HLS
latency depends on join time relative to the segment cadence. Prints numbers, never asserts.

    /tmp/hv/bin/python bench/latency_glass.py [--quick] [--modes llhls hls webrtc nginx]
        [--part-target 0.2] [--warmup 8] [--measure 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO,
    hearth_server,
    http_get,
    need,
    pct,
    print_system_info,
    print_table,
    terminate,
)
from bench.peers import nginx_rtmp as nginx_peer
from tests.helpers.browser import CHROMIUM, chromium_page

WIDTH, HEIGHT, FPS = 320, 240, 30
COLS, ROWS = 8, 6
CELL = 40
VALUE_BITS = 41
CHECK_BITS = 7
HLS_JS = REPO / "appliance" / "static" / "vendor" / "hls.min.js"
MAX_RUN_S = 300.0
"""Hard cap on a publisher's life (the source thread stops after it)."""


# --------------------------------------------------------------------------- clock stripe


def checksum(ms: int) -> int:
    """XOR of the 7-bit chunks of ``ms`` (mirrored in the page's decoder)."""
    c = 0
    while ms:
        c ^= ms & 0x7F
        ms >>= 7
    return c


def stripe_frame(ms: int) -> bytes:
    """One gray 320x240 frame with ``ms`` (and its checksum) as 48 black/white cells."""
    word = (ms & ((1 << VALUE_BITS) - 1)) << CHECK_BITS | checksum(ms)
    bits = [(word >> (COLS * ROWS - 1 - i)) & 1 for i in range(COLS * ROWS)]
    grid = np.array(bits, dtype=np.uint8).reshape(ROWS, COLS) * 255
    return np.kron(grid, np.ones((CELL, CELL), dtype=np.uint8)).tobytes()


class StripePublisher:
    """ffmpeg fed with clock-stripe frames at 30 fps, plus a sine tone for audio."""

    def __init__(self, rtmp_url: str, *, audio: bool = True, fmt: str = "flv",
                 output_args: tuple[str, ...] = ()) -> None:
        need("ffmpeg")
        cmd = [
            "ffmpeg", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "gray", "-video_size", f"{WIDTH}x{HEIGHT}",
            "-framerate", str(FPS), "-i", "pipe:0",
            # No -re on the tone: ffmpeg then pulls audio only as far as the (pipe-paced)
            # video timeline, so the flv interleaver never holds video back for audio.
            *(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
               "-map", "0:v", "-map", "1:a"] if audio else ["-map", "0:v"]),
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0", "-bf", "0",
            "-pix_fmt", "yuv420p", "-b:v", "800k",
            *(["-c:a", "aac", "-b:a", "64k"] if audio else []),
            *output_args,
            "-f", fmt, rtmp_url,
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self._stop = threading.Event()
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name="stripe-source", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        start = time.monotonic()
        try:
            while not self._stop.is_set() and time.monotonic() - start < MAX_RUN_S:
                due = start + self.frames / FPS
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -2 / FPS:
                    # ffmpeg was not reading (start-up): do not burst the missed frames, or
                    # the video timeline runs ahead of the -re audio one and the flv muxer's
                    # interleaving holds every video packet back by that much (~250 ms).
                    start = time.monotonic() - self.frames / FPS
                stdin.write(stripe_frame(time.time_ns() // 1_000_000))
                stdin.flush()
                self.frames += 1
        except (BrokenPipeError, ValueError, OSError):
            pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        terminate(self.proc, timeout=3)


@contextlib.contextmanager
def stripe_publisher(rtmp_url: str, fmt: str = "flv") -> Iterator[StripePublisher]:
    pub = StripePublisher(rtmp_url, audio=os.environ.get("BENCH_GLASS_AUDIO", "1") == "1",
                          fmt=fmt)
    try:
        yield pub
    finally:
        pub.stop()


# --------------------------------------------------------------------------- the page side

INSTALL_JS = """
([cols, rows, valueBits, checkBits]) => {
  const v = document.getElementById('player') || document.querySelector('video');
  const g = window.__glass = {samples: [], bad: 0, frames: 0, waiting: 0, collecting: false,
                              firstFrameAt: null};
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  v.addEventListener('waiting', () => { if (g.collecting) g.waiting++; });
  const checksum = (ms) => {
    let c = 0;
    while (ms > 0) { c ^= ms % 128; ms = Math.floor(ms / 128); }
    return c;
  };
  const onFrame = (now, meta) => {
    const shown = meta && meta.expectedDisplayTime
      ? performance.timeOrigin + meta.expectedDisplayTime : Date.now();
    const w = v.videoWidth, h = v.videoHeight;
    if (w && h) {
      if (g.firstFrameAt === null) g.firstFrameAt = Date.now();
      g.frames++;
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(v, 0, 0, w, h);
      const px = ctx.getImageData(0, 0, w, h).data;
      let value = 0, check = 0;
      for (let i = 0; i < cols * rows; i++) {
        const cx = Math.floor(((i % cols) + 0.5) * w / cols);
        const cy = Math.floor((Math.floor(i / cols) + 0.5) * h / rows);
        const bit = px[(cy * w + cx) * 4] > 127 ? 1 : 0;
        if (i < valueBits) value = value * 2 + bit; else check = check * 2 + bit;
      }
      const age = shown - value;
      if (checksum(value) === check && age > -1000 && age < 120000) {
        if (g.collecting) g.samples.push(age);
      } else if (g.collecting) {
        g.bad++;
      }
    }
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
  return !!v;
}
"""

NGINX_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>nginx-rtmp + hls.js</title></head>
<body><video id="player" muted autoplay playsinline></video>
<script src="hls.min.js"></script>
<script>
  const v = document.getElementById('player');
  const hls = new Hls();
  window.hearthPlayer = {hls: hls, mode: 'nginx-hls'};
  hls.loadSource('KEY.m3u8');
  hls.attachMedia(v);
  hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch(() => {}));
</script></body></html>
"""

WEBRTC_STATS_JS = """
async () => {
  const pc = window.hearthPlayer && window.hearthPlayer.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let out = null;
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.jitterBufferEmittedCount) {
      out = {jb_ms: 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount,
             freezes: s.freezeCount || 0, decoded: s.framesDecoded};
    }
  });
  return out;
}
"""


def measure_page(page: Any, url: str, warmup: float, measure: float) -> dict[str, Any]:
    """Open ``url``, wait for the first frame, warm up, then collect latency samples."""
    t0 = time.monotonic()
    page.goto(url)
    page.wait_for_selector("video", timeout=15_000)
    page.evaluate(INSTALL_JS, [COLS, ROWS, VALUE_BITS, CHECK_BITS])
    first_frame: float | None = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if page.evaluate("() => window.__glass.frames") > 0:
            first_frame = time.monotonic() - t0
            break
        page.wait_for_timeout(50)
    if first_frame is None:
        return {"samples": [], "bad": 0, "first_frame": None, "waiting": 0, "stats": None}
    page.wait_for_timeout(int(warmup * 1000))
    page.evaluate("() => { window.__glass.collecting = true; }")
    page.wait_for_timeout(int(measure * 1000))
    g = page.evaluate(
        "() => { const g = window.__glass; g.collecting = false;"
        " return {samples: g.samples, bad: g.bad, waiting: g.waiting}; }"
    )
    stats = page.evaluate(WEBRTC_STATS_JS)
    return {"samples": [float(x) / 1000 for x in g["samples"]], "bad": int(g["bad"]),
            "first_frame": first_frame, "waiting": int(g["waiting"]), "stats": stats}  # fmt: skip


def wait_segments(url: str, n: int, timeout: float) -> None:
    """Poll an m3u8 (following redirects) until it lists ``n`` complete segments."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http_get(url, timeout=1.0)
        if status == 200 and body.count(b"#EXTINF") >= n:
            return
        time.sleep(0.1)


def decode_stamp(gray: np.ndarray) -> int | None:
    """The stripe's millisecond value from a decoded gray frame (None if the check fails)."""
    h, w = gray.shape
    word = 0
    for i in range(COLS * ROWS):
        cx = int(((i % COLS) + 0.5) * w / COLS)
        cy = int(((i // COLS) + 0.5) * h / ROWS)
        word = word << 1 | (1 if gray[cy, cx] > 127 else 0)
    value, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    return value if checksum(value) == check else None


def ingest_delays(playlist_url: str) -> list[float]:
    """Seconds from a frame's stamp to its arrival at the server, per listed segment.

    EXT-X-PROGRAM-DATE-TIME is the wall clock at which the segment's first sample arrived
    over RTMP; the first frame of the segment (init + first part, decoded with PyAV) carries
    the stamp. The difference is encoder + ffmpeg muxing + RTMP: the part of every glass-to-
    glass number that is not the server's or the player's.
    """
    import io
    from datetime import datetime

    import av

    status, body = http_get(playlist_url, timeout=2.0)
    if status != 200:
        return []
    base = playlist_url.split("?", 1)[0].rsplit("/", 1)[0]
    text = body.decode()
    init_uri = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)[-1]
    init = http_get(f"{base}/{init_uri}")[1]
    out = []
    pdt: float | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
        elif line.startswith("seg-") and pdt is not None:
            data = http_get(f"{base}/{line}")[1]
            with contextlib.suppress(Exception), av.open(io.BytesIO(init + data), "r") as c:
                for frame in c.decode(video=0):
                    ms = decode_stamp(frame.to_ndarray(format="gray"))
                    if ms is not None:
                        out.append(pdt - ms / 1000)
                    break
            pdt = None
    return out


# --------------------------------------------------------------------------- runs


def run_hearth(
    modes: list[str], part_target: float, warmup: float, measure: float
) -> dict[str, dict[str, Any]]:
    os.environ["HEARTH_WEBRTC_ENABLED"] = "1"
    os.environ["HEARTH_WEBRTC_PUBLIC_IP"] = "127.0.0.1"
    os.environ["HEARTH_HLS_PART_TARGET"] = str(part_target)
    os.environ.setdefault("HEARTH_LOG_LEVEL", "WARNING")
    results: dict[str, dict[str, Any]] = {}
    srt_port = 0
    if "llhls-srt" in modes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            srt_port = int(s.getsockname()[1])
    with hearth_server(("--srt", f"127.0.0.1:{srt_port}") if srt_port else ()) as srv, \
            contextlib.ExitStack() as stack:
        created = srv.create_stream("glass")
        sid = created["id"]
        stack.enter_context(stripe_publisher(srv.rtmp_url(created["stream_key"])))
        srt_sid = ""
        if srt_port:  # a second channel, fed over SRT by a second stripe publisher
            srt_created = srv.create_stream("glass srt")
            srt_sid = srt_created["id"]
            stack.enter_context(stripe_publisher(
                f"srt://127.0.0.1:{srt_port}?streamid={srt_created['stream_key']}", "mpegts"))
        page = stack.enter_context(chromium_page())
        for s_id in filter(None, (sid, srt_sid)):
            wait_segments(srv.playlist_url(s_id), 3, 20)  # a late joiner, as in production
        for mode in modes:
            watch = (f"{srv.base}/watch/{srt_sid}?mode=llhls" if mode == "llhls-srt"
                     else f"{srv.base}/watch/{sid}?mode={mode}")
            results[mode] = measure_page(page, watch, warmup, measure)
            page.goto("about:blank")  # tears down hls.js / the WHEP session
        delays = ingest_delays(srv.playlist_url(sid))
    results["_ingest"] = {"samples": delays}
    return results


def run_nginx(warmup: float, measure: float) -> dict[str, Any]:
    with nginx_peer.nginx_rtmp(fragment="2s", playlist_length="6s") as ng:
        key = "glass"
        base = f"http://127.0.0.1:{ng.http_port}/hls"
        with stripe_publisher(ng.rtmp_url(key)), chromium_page() as page:
            page.route(f"{base}/glass.html", lambda route: route.fulfill(
                status=200, content_type="text/html",
                body=NGINX_PAGE.replace("KEY", key)))  # fmt: skip
            page.route(f"{base}/hls.min.js", lambda route: route.fulfill(
                status=200, content_type="application/javascript", path=str(HLS_JS)))  # fmt: skip
            wait_segments(ng.playlist_url(key), 3, 20)
            return measure_page(page, f"{base}/glass.html", warmup, measure)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="4 s warm-up, 8 s measurement")
    ap.add_argument("--modes", nargs="+", default=["llhls", "hls", "webrtc", "nginx"],
                    choices=["llhls", "llhls-srt", "hls", "webrtc", "nginx"])  # fmt: skip
    ap.add_argument("--part-target", type=float, default=0.2,
                    help="HEARTH_HLS_PART_TARGET for the run (product default 0.2)")  # fmt: skip
    ap.add_argument("--no-audio", action="store_true", help="publish video only")
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--measure", type=float, default=20.0)
    args = ap.parse_args()
    warmup, measure = (4.0, 8.0) if args.quick else (args.warmup, args.measure)
    warmup, measure = min(warmup, 30.0), min(measure, 60.0)
    if args.no_audio:
        os.environ["BENCH_GLASS_AUDIO"] = "0"
    if CHROMIUM is None:
        sys.exit("[bench] chromium not found")
    print_system_info()
    t0 = time.monotonic()
    hearth_modes = [m for m in args.modes if m != "nginx"]
    results: dict[str, dict[str, Any]] = {}
    if hearth_modes:
        results.update(run_hearth(hearth_modes, args.part_target, warmup, measure))
    if "nginx" in args.modes:
        reason = nginx_peer.available()
        if reason:
            print(f"# nginx-rtmp skipped: {reason}")
        else:
            results["nginx"] = run_nginx(warmup, measure)
    labels = {
        "llhls": f"hearth LL-HLS (part {args.part_target:g} s)",
        "llhls-srt": f"hearth LL-HLS, SRT ingest (part {args.part_target:g} s)",
        "hls": "hearth HLS (hls.js, 3 x TD)",
        "webrtc": "hearth WebRTC (WHEP)",
        "nginx": "nginx-rtmp 2s + hls.js",
    }
    targets = {"llhls": "p50 ≤ 1.0 / p95 ≤ 1.3 (base 1.5/2.0)", "llhls-srt": "-",
               "hls": "p50 ≤ 6 (base 8)",
               "webrtc": "p50 ≤ 0.15 (base 0.3)", "nginx": "-"}  # fmt: skip
    ingest = results.pop("_ingest", {}).get("samples", [])
    rows = []
    for mode, r in results.items():
        s = r["samples"]
        extra = ""
        if r.get("stats"):
            st = r["stats"]
            extra = f"jitterbuf {st['jb_ms']:.0f} ms, freezes {st['freezes']}"
        rows.append([labels[mode], len(s), pct(s, 50), pct(s, 95), max(s) if s else float("nan"),
                     r["bad"], r["waiting"], r["first_frame"] if r["first_frame"] else "-",
                     targets[mode], extra])  # fmt: skip
    print(f"# glass-to-glass seconds; warm-up {warmup:g} s, measured {measure:g} s per player;"
          f" total run {time.monotonic() - t0:.0f} s")  # fmt: skip
    print_table(["player", "frames", "p50 s", "p95 s", "max s", "misread", "stalls",
                 "1st frame s", "target", "notes"], rows)  # fmt: skip
    if ingest:
        print(f"# of which stamp → RTMP arrival at Hearth (x264 + ffmpeg flv mux + RTMP), "
              f"from {len(ingest)} segments' PDT: p50 {pct(ingest, 50):.3f} s, "
              f"max {max(ingest):.3f} s")  # fmt: skip


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
