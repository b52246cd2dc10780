"""Capture what a real ffmpeg publisher sends to an RTMP server (the fuzz seed).

Runs Hearth's RTMP server in-process with a handler that accepts any publish, lets ffmpeg
publish a short H.264 + AAC test pattern to it, and writes every client → server byte (the
handshake included) to ``tests/data/ffmpeg_publish.bin``. The hypothesis fuzz of the RTMP
session (tests/media/rtmp/test_fuzz_capture.py) mutates this capture, and
``scripts/fuzz_rtmp.py`` runs the same properties for as long as you like.

Usage: python scripts/capture_rtmp.py [--seconds 1.0] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path

from media.rtmp.server import RtmpConnection, start_rtmp_server
from media.rtmp.session import PublishRequested, RtmpEvent, RtmpServerSession

ROOT = Path(__file__).resolve().parent.parent


class RecordingSession(RtmpServerSession):
    """A session that keeps a copy of everything the client sent."""

    captured = bytearray()

    def receive_data(self, data: bytes) -> None:
        RecordingSession.captured += data
        super().receive_data(data)


class AcceptAll:
    def connection_made(self, conn: RtmpConnection) -> None:
        pass

    def events_received(self, conn: RtmpConnection, events: list[RtmpEvent]) -> None:
        for ev in events:
            if isinstance(ev, PublishRequested):
                conn.session.accept_publish(ev.message_stream_id)

    def connection_lost(self, conn: RtmpConnection, error: BaseException | None) -> None:
        pass


async def capture(seconds: float) -> bytes:
    server = await start_rtmp_server("127.0.0.1", 0, AcceptAll(),
                                     session_factory=RecordingSession)
    port = server.sockets[0].getsockname()[1]
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is required"
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=15",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-pix_fmt", "yuv420p", "-g", "15", "-b:v", "60k", "-c:a", "aac", "-b:a", "24k",
        "-ac", "1", "-f", "flv", f"rtmp://127.0.0.1:{port}/live/capturekey")
    await asyncio.wait_for(proc.wait(), 60)
    server.close()
    await server.wait_closed()
    return bytes(RecordingSession.captured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" /
                        "ffmpeg_publish.bin")
    args = parser.parse_args()
    data = asyncio.run(capture(args.seconds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {len(data)} bytes to {args.out}")


if __name__ == "__main__":
    main()
