"""In-process cost of the ingest path, per media unit, without sockets or the event loop.

Records once what a real ffmpeg publisher sends (client→server bytes of a 30 s push of the
bench source, through a loopback proxy in front of a throwaway Hearth), then replays those
bytes through the same pipeline the appliance runs: RTMP session → FLV depacketizer →
health meter → hub → HLS muxer. Prints µs per unit for each stage and in total, and the
implied % of one core for a 3 Mbit/s stream, with the C chunk parser (where it is built) and
with the Python one, in the same run. Numbers only; no assertions.

    python bench/ingest_path.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.hub import Publisher
from bench.common import hearth_server, make_source
from media.depacketizer import FlvDepacketizer
from media.health import HealthMeter
from media.hls.segmenter import HlsMuxer
from media.rtmp.chunk import NATIVE_CHUNK_READER
from media.rtmp.session import (
    AudioReceived,
    PublishRequested,
    RtmpServerSession,
    VideoReceived,
)
from media.units import CodecConfig, MediaUnit

CAPTURE = Path(__file__).resolve().parent / "out" / "rtmp_capture_30s.bin"


def _proxy(listen: socket.socket, upstream_port: int, sink: bytearray, done: threading.Event
           ) -> None:
    client, _ = listen.accept()
    server = socket.create_connection(("127.0.0.1", upstream_port))

    def pump(src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    sink.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            done.set()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threading.Thread(target=pump, args=(server, client, False), daemon=True).start()
    pump(client, server, True)


def record() -> bytes:
    if CAPTURE.exists():
        return CAPTURE.read_bytes()
    src = make_source()
    sink = bytearray()
    with hearth_server() as h:
        key = h.create_stream("capture")["stream_key"]
        listen = socket.socket()
        listen.bind(("127.0.0.1", 0))
        listen.listen(1)
        port = listen.getsockname()[1]
        done = threading.Event()
        threading.Thread(target=_proxy, args=(listen, h.rtmp_port, sink, done),
                         daemon=True).start()
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(src),
                        "-t", "30", "-c", "copy", "-f", "flv",
                        f"rtmp://127.0.0.1:{port}/live/{key}"], check=True)
        done.wait(5)
    CAPTURE.parent.mkdir(parents=True, exist_ok=True)
    CAPTURE.write_bytes(bytes(sink))
    return bytes(sink)


def replay(data: bytes, piece: int = 16384, native: bool = True) -> dict[str, float]:
    """One pass; returns seconds spent per stage and the unit count."""
    session = RtmpServerSession(native_chunk_reader=native)
    depack = FlvDepacketizer()
    health = HealthMeter()
    publisher = Publisher("bench")
    reader = publisher.add_reader("hls", capacity=1 << 20)
    muxer = HlsMuxer()
    t = {"rtmp": 0.0, "flv": 0.0, "health+hub": 0.0, "hls": 0.0, "units": 0.0}
    clock = time.perf_counter
    for i in range(0, len(data), piece):
        t0 = clock()
        session.receive_data(data[i:i + piece])
        events = session.events()
        session.data_to_send()
        t1 = clock()
        t["rtmp"] += t1 - t0
        outs: list[MediaUnit | CodecConfig] = []
        for ev in events:
            if isinstance(ev, PublishRequested):
                session.accept_publish(ev.message_stream_id)
            elif isinstance(ev, VideoReceived):
                outs += depack.video_tag(ev.timestamp, ev.body)
            elif isinstance(ev, AudioReceived):
                outs += depack.audio_tag(ev.timestamp, ev.body)
        t2 = clock()
        t["flv"] += t2 - t1
        for out in outs:
            if isinstance(out, MediaUnit):
                health.add(out)
                publisher.publish(out)
                t["units"] += 1
            else:
                health.set_config(out.video, out.audio)
                publisher.set_config(out)
        t3 = clock()
        t["health+hub"] += t3 - t2
        while (item := reader.get_nowait()) is not None:
            if isinstance(item, MediaUnit):
                muxer.push(item)
            elif isinstance(item, CodecConfig) and (item.video or item.audio):
                muxer.set_config(item.video, item.audio)
        t["hls"] += clock() - t3
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = record()
    print(f"ingest_path: {len(data) / 1e6:.1f} MB of captured RTMP, "
          f"30 s of 720p30 3 Mbit/s + AAC, best of {args.rounds}")
    readers = [("C chunk parser", True), ("Python chunk parser", False)]
    if NATIVE_CHUNK_READER is None:
        readers = readers[1:]
        print("  (the C chunk parser is not built here: pip install -e . with a C compiler)")
    for label, native in readers:
        best: dict[str, float] | None = None
        for _ in range(args.rounds):
            t = replay(data, native=native)
            total = sum(v for k, v in t.items() if k != "units")
            if best is None or total < sum(v for k, v in best.items() if k != "units"):
                best = t
        assert best is not None
        units = best.pop("units")
        total = sum(best.values())
        print(f"{label}: {units:.0f} media units")
        for stage, secs in best.items():
            print(f"  {stage:11} {secs / units * 1e6:7.1f} µs/unit")
        print(f"  {'total':11} {total / units * 1e6:7.1f} µs/unit  →  "
              f"{total / 30 * 100:.2f} % of one core per stream (in process, no I/O)")

if __name__ == "__main__":
    asyncio.get_event_loop_policy()  # keep asyncio imported state identical to the server's
    main()
