"""Real RTMP publishers that are not ours: the ffmpeg CLI and PyAV (libavformat's RTMP)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np

FFMPEG = shutil.which("ffmpeg")
GST_LAUNCH = shutil.which("gst-launch-1.0")


def ffmpeg_publish(url: str, seconds: float, *, size: str = "320x240", rate: int = 25,
                   gop: int | None = None, bframes: int = 0, video_codec: str = "libx264",
                   profile: str | None = None,
                   audio: bool = True, realtime: bool = True) -> subprocess.Popen[bytes]:
    """Start ``ffmpeg`` pushing a synthetic test pattern (and a sine tone) to ``url``."""
    assert FFMPEG, "ffmpeg is required (scripts/install-test-deps.sh installs it)"
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
    if realtime:
        cmd.append("-re")
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-t", str(seconds), "-c:v", video_codec]
    if video_codec == "libx264":
        cmd += ["-preset", "ultrafast", "-tune", "zerolatency", "-bf", str(bframes),
                "-pix_fmt", "yuv420p"]
        if profile == "high":
            # x264 picks the smallest profile the tools fit: ultrafast alone is Constrained
            # Baseline; CABAC and 8x8 transforms make it High.
            cmd += ["-profile:v", "high", "-x264-params", "cabac=1:8x8dct=1"]
    cmd += ["-g", str(gop or rate)]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "64k"]
    cmd += ["-f", "flv", url]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def gstreamer_publish(url: str, seconds: float, *, rate: int = 25) -> subprocess.Popen[bytes]:
    """GStreamer's own RTMP client (``rtmp2sink``) pushing x264 + AAC from test sources."""
    assert GST_LAUNCH, "gst-launch-1.0 is required (scripts/install-test-deps.sh installs it)"
    frames = int(seconds * rate)
    audio_buffers = int(seconds * 48000 / 1024)
    pipeline = (
        f"videotestsrc is-live=true num-buffers={frames} "
        f"! video/x-raw,width=320,height=240,framerate={rate}/1,format=I420 "
        f"! x264enc tune=zerolatency key-int-max={rate} bframes=0 ! h264parse "
        f"! flvmux name=mux streamable=true ! rtmp2sink location={url} "
        f"audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=1024 "
        "! audioconvert ! audioresample ! audio/x-raw,rate=48000 ! avenc_aac ! aacparse ! mux."
    )
    return subprocess.Popen([GST_LAUNCH, "-q", *pipeline.split()], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def pyav_publish(url: str, seconds: float, *, width: int = 320, height: int = 240,
                 rate: int = 25) -> None:
    """Publish H.264 + AAC with PyAV in real time (blocking; run it in a thread)."""
    import av

    container = av.open(url, mode="w", format="flv")
    try:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(rate),
                         "bf": "0"}
        audio = container.add_stream("aac", rate=48000)
        audio.layout = "mono"
        frames = int(seconds * rate)
        samples_per_frame = 1024
        audio_pts = 0
        start = time.monotonic()
        t = np.arange(samples_per_frame, dtype=np.float32)
        for i in range(frames):
            img = np.zeros((height, width, 3), dtype=np.uint8)
            img[:, :, 0] = (i * 7) % 256
            img[: height // 2, : (i * 4) % width, 1] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            for packet in video.encode(frame):
                container.mux(packet)
            while audio_pts < (i + 1) * 48000 / rate:
                wave = 0.2 * np.sin(2 * np.pi * 440 * (t + audio_pts) / 48000)
                af = av.AudioFrame.from_ndarray(wave.reshape(1, -1).astype(np.float32),
                                                format="flt", layout="mono")
                af.sample_rate = 48000
                af.pts = audio_pts
                af.time_base = Fraction(1, 48000)
                for packet in audio.encode(af):
                    container.mux(packet)
                audio_pts += samples_per_frame
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for packet in video.encode():
            container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    finally:
        container.close()


def pyav_publish_process(url: str, seconds: float) -> subprocess.Popen[bytes]:
    """PyAV publishing from a child process.

    PyAV keeps the GIL while libavformat's RTMP client blocks on its socket, which would
    freeze everything else in the test process; a child process keeps the test responsive.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.publishers", url, str(seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


if __name__ == "__main__":
    pyav_publish(sys.argv[1], float(sys.argv[2]))


def make_ts_file(path: str, seconds: float = 4.0, *, size: str = "320x240", rate: int = 25,
                 bframes: int = 0) -> str:
    """Encode a short H.264 + AAC MPEG-TS file once (publishers then stream-copy it)."""
    assert FFMPEG, "ffmpeg is required (scripts/install-test-deps.sh installs it)"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-bf", str(bframes),
         "-g", str(rate), "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", path],
        check=True, timeout=120)
    return path


def ffmpeg_publish_srt(url: str, ts_file: str, *, loops: int = -1) -> subprocess.Popen[bytes]:
    """``ffmpeg -re -stream_loop N -i FILE -c copy -f mpegts srt://…`` (an SRT caller)."""
    assert FFMPEG, "ffmpeg is required (scripts/install-test-deps.sh installs it)"
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
         "-stream_loop", str(loops), "-i", ts_file, "-c", "copy", "-f", "mpegts", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def gstreamer_publish_srt(url: str, *, rate: int = 25) -> subprocess.Popen[bytes]:
    """GStreamer's own SRT caller (``srtsink``, libsrt) pushing live x264 + AAC in MPEG-TS
    until terminated."""
    assert GST_LAUNCH, "gst-launch-1.0 is required (scripts/install-test-deps.sh installs it)"
    pipeline = (
        f"videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate={rate}/1,"
        f"format=I420 ! x264enc tune=zerolatency key-int-max={rate} bframes=0 ! h264parse "
        "! mpegtsmux name=mux alignment=7 ! srtsink uri=URI "
        "audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=48000 "
        "! avenc_aac ! aacparse ! mux."
    )
    # The URI holds '?' and '&': one argv element, never split.
    argv = [a if a != "uri=URI" else f"uri={url}" for a in pipeline.split()]
    return subprocess.Popen([GST_LAUNCH, "-q", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
