"""Synthetic real media for the packaging tests: H.264 (libx264) and AAC encoded with PyAV.

Frames are moving luma/chroma gradients written straight into the planes (no numpy in the
venv), audio a 440 Hz sine; both are muxed into an in-memory MP4 by FFmpeg and
demuxed again, which yields exactly what ingest hands downstream: an avcC record and an
AudioSpecificConfig from the stream extradata, AVCC-framed video access units and raw AAC
frames, with timestamps that we convert to the 90 kHz :class:`MediaUnit` clock.
"""

from __future__ import annotations

import functools
import io
import math
from array import array
from dataclasses import dataclass, field
from fractions import Fraction

import av

from media.aac import parse_asc
from media.h264 import parse_avcc
from media.units import CLOCK_RATE, AudioConfig, MediaUnit, TrackKind, VideoConfig

FPS = 25
SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class SyntheticStream:
    video: VideoConfig | None
    audio: AudioConfig | None
    units: tuple[MediaUnit, ...]  # interleaved in dts order
    video_frames: int
    audio_frames: int

    def of(self, kind: TrackKind) -> list[MediaUnit]:
        return [u for u in self.units if u.kind is kind]


def _encode_mp4(
    seconds: float,
    *,
    video: bool,
    audio: bool,
    gop: int,
    bframes: int,
    width: int,
    height: int,
    preset: str,
    bitrate: int | None,
) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = None
        if video:
            vs = out.add_stream("libx264", rate=FPS)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            opts: dict[str, object] = {
                "g": str(gop),
                "bf": str(bframes),
                "preset": preset,
                "sc_threshold": "0",
            }
            if bitrate:
                vs.bit_rate = bitrate
            vs.options = opts
        a_s = None
        if audio:
            a_s = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        n_video = round(seconds * FPS)
        if vs is not None:
            for i in range(n_video):
                frame = av.VideoFrame(width, height, "yuv420p")
                for n, plane in enumerate(frame.planes):
                    plane.update(
                        _plane_pattern(plane.line_size, plane.height, n)[i * 3 :][
                            : plane.line_size * plane.height
                        ]
                    )
                frame.pts = i
                for pkt in vs.encode(frame):
                    out.mux(pkt)
            for pkt in vs.encode(None):
                out.mux(pkt)
        if a_s is not None:
            n_samples = round(seconds * SAMPLE_RATE)
            for start in range(0, n_samples, 1024):
                pcm = array(
                    "f",
                    (
                        0.3 * math.sin(2 * math.pi * 440 * (start + k) / SAMPLE_RATE)
                        for k in range(1024)
                    ),
                ).tobytes()
                aframe = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
                aframe.planes[0].update(pcm)
                aframe.planes[1].update(pcm)
                aframe.sample_rate = SAMPLE_RATE
                aframe.pts = start
                for pkt in a_s.encode(aframe):
                    out.mux(pkt)
            for pkt in a_s.encode(None):
                out.mux(pkt)
    return buf.getvalue()


@functools.lru_cache(maxsize=32)
def _plane_pattern(line_size: int, rows: int, plane: int) -> bytes:
    """A diagonal gradient with room to slide: frame i starts ``3 * i`` bytes in."""
    row = bytes((x * (plane + 1) + plane * 60) % 256 for x in range(line_size + rows))
    body = b"".join(row[y : y + line_size] for y in range(rows))
    return body * 2 + body[: 3 * 2000]


def _to_clock(value: int, time_base: Fraction) -> int:
    return round(value * time_base * CLOCK_RATE)


@functools.lru_cache(maxsize=16)
def make_stream(
    seconds: float = 6.0,
    *,
    video: bool = True,
    audio: bool = True,
    gop: int = FPS,
    bframes: int = 0,
    width: int = 320,
    height: int = 240,
    preset: str = "ultrafast",
    bitrate: int | None = None,
    arrival_base: float = 1_700_000_000.0,
) -> SyntheticStream:
    """Encode, mux to MP4 in memory, demux into configs and MediaUnits (timeline starts at 0)."""
    data = _encode_mp4(
        seconds,
        video=video,
        audio=audio,
        gop=gop,
        bframes=bframes,
        width=width,
        height=height,
        preset=preset,
        bitrate=bitrate,
    )
    raw: list[tuple[TrackKind, int, int, bool, bytes]] = []
    vcfg: VideoConfig | None = None
    acfg: AudioConfig | None = None
    with av.open(io.BytesIO(data), "r") as inp:
        for s in inp.streams:
            if s.type == "video":
                vcfg = parse_avcc(s.codec_context.extradata or b"")
            elif s.type == "audio":
                acfg = parse_asc(s.codec_context.extradata or b"")
        for pkt in inp.demux():
            if pkt.size == 0 or pkt.dts is None:
                continue
            tb = pkt.time_base
            kind = TrackKind.VIDEO if pkt.stream.type == "video" else TrackKind.AUDIO
            dts = _to_clock(pkt.dts, tb)
            pts = _to_clock(pkt.pts if pkt.pts is not None else pkt.dts, tb)
            key = bool(pkt.is_keyframe) if kind is TrackKind.VIDEO else True
            raw.append((kind, dts, pts, key, bytes(pkt)))
    offset = -min(min(d, p) for _, d, p, _, _ in raw)
    raw.sort(key=lambda r: (r[1], r[0] is TrackKind.AUDIO))
    units = tuple(
        MediaUnit(
            kind=k,
            dts=d + offset,
            pts=(p + offset) if k is TrackKind.VIDEO else d + offset,
            keyframe=key,
            data=payload,
            arrival=arrival_base + (d + offset) / CLOCK_RATE,
        )
        for k, d, p, key, payload in raw
    )
    return SyntheticStream(
        video=vcfg,
        audio=acfg,
        units=units,
        video_frames=sum(1 for u in units if u.kind is TrackKind.VIDEO),
        audio_frames=sum(1 for u in units if u.kind is TrackKind.AUDIO),
    )


@dataclass
class DemuxedTrack:
    codec: str
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    dts: list[int] = field(default_factory=list)  # in seconds * CLOCK_RATE (rounded)
    pts: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    keyframes: list[bool] = field(default_factory=list)
    decoded: int = 0


def demux(data: bytes) -> dict[str, DemuxedTrack]:
    """Demux (and fully decode, decoder flushed) an fMP4 byte string with PyAV/FFmpeg."""
    tracks: dict[str, DemuxedTrack] = {}
    with av.open(io.BytesIO(data), "r") as inp:
        for s in inp.streams:
            cc = s.codec_context
            tracks[s.type] = DemuxedTrack(
                codec=cc.name,
                width=getattr(cc, "width", 0) if s.type == "video" else 0,
                height=getattr(cc, "height", 0) if s.type == "video" else 0,
                sample_rate=getattr(cc, "sample_rate", 0) if s.type == "audio" else 0,
            )
        for pkt in inp.demux():
            t = tracks[pkt.stream.type]
            if pkt.size and pkt.dts is not None and pkt.pts is not None:
                tb = pkt.time_base
                t.dts.append(_to_clock(pkt.dts, tb))
                t.pts.append(_to_clock(pkt.pts, tb))
                t.durations.append(_to_clock(pkt.duration or 0, tb))
                t.keyframes.append(bool(pkt.is_keyframe))
            t.decoded += len(pkt.decode())  # the final empty packet flushes the decoder
    return tracks


@functools.lru_cache(maxsize=32)
def encode_avcc(
    width: int, height: int, *, pix_fmt: str = "yuv420p", x264_params: str = "", frames: int = 2
) -> tuple[bytes, list[bytes]]:
    """Encode a few frames with libx264 into MP4; return (avcC record, AVCC access units)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.options = (
            {"preset": "ultrafast", "x264-params": x264_params}
            if x264_params
            else {"preset": "ultrafast"}
        )
        for i in range(frames):
            frame = av.VideoFrame(width, height, pix_fmt)
            for n, plane in enumerate(frame.planes):
                size = plane.line_size * plane.height
                plane.update(_plane_pattern(plane.line_size, plane.height, n)[i * 3 :][:size])
            frame.pts = i
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    with av.open(io.BytesIO(buf.getvalue()), "r") as inp:
        stream = inp.streams.video[0]
        record = stream.codec_context.extradata or b""
        units = [bytes(p) for p in inp.demux(stream) if p.size]
    return record, units
