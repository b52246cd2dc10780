"""H.264 decode → scale → encode for the quality ladder (PyAV/libavcodec), one frame at a time.

Synchronous and CPU-bound: every method here runs in a worker thread, never on the event loop
(libavcodec and libswscale calls release the GIL, so a decoder thread and one encoder thread per
rendition run in parallel on several cores).

Alignment. Every rendition must cut its segments and parts where the source does
(rfc8216bis §6.2.4: renditions of one stream SHOULD share segment boundaries, which is what
lets a player switch between them). The HLS segmenter cuts on decode timestamps at keyframes,
so an encoder here (a) makes an IDR exactly at each source keyframe (``pict_type = I`` with
x264 ``forced-idr``; its own keyframe decisions are off: ``keyint=infinite``, ``scenecut=0``),
and (b) gives its units the source's presentation timestamps and a decode timestamp shifted by
the source keyframes' composition offset, so a rendition keyframe has the same ``dts`` as the
source keyframe (``MediaUnit.dts``) although the rendition has no B-frames (``bframes=0``, which
is also what WebRTC needs).
"""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
from av.codec.context import CodecContext, Flags
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import VideoReformatter

from media.h264 import NAL_AUD, NAL_PPS, NAL_SPS, H264Error, nal_type, parse_avcc, split_annexb
from media.h264 import build_avcc as _build_avcc
from media.ladder import Rendition
from media.units import CLOCK_RATE, MediaUnit, TrackKind, VideoConfig

__all__ = [
    "HARDWARE_ENCODERS",
    "SOFTWARE_ENCODER",
    "Decoder",
    "EncodedFrame",
    "RenditionEncoder",
    "TranscodeError",
    "detect_hardware_encoders",
    "encoder_codec",
]

logger = logging.getLogger(__name__)

TIME_BASE = Fraction(1, CLOCK_RATE)
SOFTWARE_ENCODER = "libx264"
HARDWARE_ENCODERS = {"vaapi": "h264_vaapi", "nvenc": "h264_nvenc", "v4l2m2m": "h264_v4l2m2m"}
"""Ladder encoder setting → libavcodec encoder name."""

X264_PRESET = "veryfast"
"""x264 speed preset: ``veryfast`` keeps a 720p → 480p + 360p ladder in real time on two cores
(bench/ladder.py) at a quality close to ``medium`` for these bitrates."""
PROFILE = "baseline"
"""H.264 profile of every rendition: Constrained Baseline (x264 ``baseline``: no B-frames, no
CABAC), the one every WebRTC client decodes (RFC 7742 §6.2 makes it mandatory to implement;
Firefox and aiortc offer nothing else), so any rendition can stand in for a B-frame source
over WHEP. It costs ~10 % more bits than High at these sizes and encodes faster."""
SCALER = "BILINEAR"
"""libswscale filter (ffmpeg's ``-vf scale=…:flags=bilinear``): downscaling by ≤ 4 needs no
wider kernel, and it is the cheapest one without visible aliasing."""


class TranscodeError(Exception):
    """A decoder or encoder could not be opened or failed on its input."""


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded picture: AVCC data (4-byte lengths), its pts, and whether it is an IDR."""

    data: bytes
    pts: int
    keyframe: bool


def encoder_codec(setting: str) -> str:
    """The libavcodec encoder for a ``ladder.encoder`` setting other than ``auto``."""
    return HARDWARE_ENCODERS.get(setting, SOFTWARE_ENCODER)


def _render_nodes() -> list[str]:
    return sorted(glob.glob("/dev/dri/renderD*"))


def _probe_encoder(codec: str) -> bool:
    """Open ``codec`` on a tiny frame and encode it; False if anything fails (no device)."""
    try:
        cc = CodecContext.create(codec, "w")
        assert isinstance(cc, av.VideoCodecContext)
        cc.width, cc.height = 128, 96
        cc.pix_fmt = "yuv420p" if codec != "h264_vaapi" else "vaapi"
        cc.time_base = TIME_BASE
        cc.framerate = Fraction(30)
        cc.open()
        frame = VideoFrame(128, 96, "yuv420p")
        frame.pts = 0
        packets = list(cc.encode(frame)) + list(cc.encode(None))
        return bool(packets)
    except Exception as exc:  # no device, no driver, unsupported: all mean "not available"
        logger.debug("encoder %s unavailable: %s", codec, exc)
        return False


def detect_hardware_encoders(probe: Callable[[str], bool] = _probe_encoder) -> list[str]:
    """The hardware H.264 encoders that open and encode a frame on this machine (setting
    names: ``vaapi``, ``nvenc``, ``v4l2m2m``), in that order; ``[]`` when there are none.

    VAAPI is only tried when a DRM render node (``/dev/dri/renderD*``) exists; the others are
    opened and fed a 128×96 frame (libavcodec lists them whether or not a device is present).
    """
    found: list[str] = []
    for setting, codec in HARDWARE_ENCODERS.items():
        try:
            av.codec.Codec(codec, "w")
        except Exception:
            continue  # not compiled into this libavcodec
        if setting == "vaapi" and not _render_nodes():
            continue
        if probe(codec):
            found.append(setting)
    return found


class Decoder:
    """H.264 decoder for one source configuration: :class:`MediaUnit` in, frames out.

    Frames come out in presentation order with ``frame.pts`` the unit's ``pts`` (90 kHz).
    """

    def __init__(self, config: VideoConfig) -> None:
        self.config = config
        cc = CodecContext.create("h264", "r")
        assert isinstance(cc, av.VideoCodecContext)
        cc.extradata = config.avcc  # AVCC framing (ISO/IEC 14496-15), as the units carry
        # One thread: frame threading would add a frame of latency per thread, and the box's
        # other core belongs to the encoders.
        cc.thread_count = 1
        self._cc = cc
        self.errors = 0

    def decode(self, unit: MediaUnit | None) -> list[VideoFrame]:
        """Decode one unit (``None`` flushes); a corrupt unit is counted, not raised."""
        try:
            if unit is None:
                return list(self._cc.decode(None))
            packet = av.Packet(unit.data)
            packet.pts, packet.dts = unit.pts, unit.dts
            packet.time_base = TIME_BASE
            return list(self._cc.decode(packet))
        except (av.error.FFmpegError, ValueError):
            self.errors += 1
            return []


def annexb_to_avcc(data: bytes) -> tuple[bytes, list[bytes]]:
    """An encoder's Annex-B access unit → (AVCC data, its SPS/PPS NAL units).

    Parameter sets and access unit delimiters are left out of the data (fMP4 carries them in
    ``avcC``; WebRTC re-inserts them before each IDR).
    """
    out = bytearray()
    params: list[bytes] = []
    for nalu in split_annexb(data):
        kind = nal_type(nalu)
        if kind in (NAL_SPS, NAL_PPS):
            params.append(nalu)
            continue
        if kind == NAL_AUD:
            continue
        out += len(nalu).to_bytes(4, "big") + nalu
    return bytes(out), params


class RenditionEncoder:
    """Scale frames to one rendition and encode them with an H.264 encoder.

    Args:
        rendition: the output size and rate budget.
        frame_rate: the source's frame rate (x264 rate control spends bits per frame).
        codec: ``libx264`` or a hardware encoder name (:data:`HARDWARE_ENCODERS`).
    """

    def __init__(self, rendition: Rendition, frame_rate: float, codec: str = SOFTWARE_ENCODER
                 ) -> None:
        self.rendition = rendition
        self.codec = codec
        p = rendition.preset
        try:
            cc = CodecContext.create(codec, "w")
            assert isinstance(cc, av.VideoCodecContext)
            cc.width, cc.height = rendition.width, rendition.height
            cc.pix_fmt = "yuv420p"
            cc.time_base = TIME_BASE
            cc.framerate = Fraction(frame_rate).limit_denominator(1001)
            cc.bit_rate = p.bitrate * 1000
            cc.flags |= Flags.global_header  # SPS/PPS in extradata → avcC
            options = {"maxrate": f"{p.maxrate}k", "bufsize": f"{p.bufsize}k"}
            if codec == SOFTWARE_ENCODER:
                cc.thread_count = 1  # one rendition per thread: parallel across renditions
                options |= {"preset": X264_PRESET, "tune": "zerolatency", "forced-idr": "1",
                            "profile": PROFILE,
                            "x264-params": "keyint=infinite:scenecut=0:bframes=0"}
            else:
                cc.gop_size = 100_000  # keyframes only where forced
                cc.max_b_frames = 0
                options |= {"forced-idr": "1", "profile": "constrained_baseline"
                            if codec != "h264_v4l2m2m" else "baseline"}
            cc.options = options
            cc.open()
        except (av.error.FFmpegError, ValueError, AssertionError) as exc:
            raise TranscodeError(f"cannot open {codec} for {rendition.name}: {exc}") from exc
        self._cc = cc
        self._scaler = VideoReformatter()
        self.config = self._video_config(cc.extradata or b"")
        self.frames = 0
        self.cpu_seconds = 0.0
        """Thread CPU time spent scaling and encoding (the real-time factor's denominator)."""

    @staticmethod
    def _video_config(extradata: bytes) -> VideoConfig:
        if extradata.startswith(b"\x01"):  # already an avcC record
            return parse_avcc(extradata)
        _, params = annexb_to_avcc(extradata)
        sps = [n for n in params if nal_type(n) == NAL_SPS]
        pps = [n for n in params if nal_type(n) == NAL_PPS]
        if not sps or not pps:
            raise TranscodeError("the encoder gave no SPS/PPS")
        try:
            return parse_avcc(_build_avcc(sps, pps))
        except H264Error as exc:
            raise TranscodeError(f"the encoder's SPS is unusable: {exc}") from exc

    def encode(self, frame: VideoFrame | None, *, keyframe: bool) -> list[EncodedFrame]:
        """Scale and encode one source frame (``None`` flushes); an IDR when ``keyframe``."""
        started = time.thread_time()
        try:
            if frame is None:
                packets = list(self._cc.encode(None))
            else:
                r = self.rendition
                # Our own scaler: VideoFrame.reformat caches one on the frame, and every
                # rendition's thread scales the same decoded frame at once.
                scaled = self._scaler.reformat(frame, r.width, r.height, "yuv420p",
                                               interpolation=SCALER, threads=1)
                scaled.pts = frame.pts
                scaled.time_base = TIME_BASE
                # libavcodec passes a decoded frame's own type (B, P) on to x264 as a demand:
                # only the source keyframes are forced, every other frame is x264's choice.
                scaled.pict_type = PictureType.I if keyframe else PictureType.NONE
                packets = list(self._cc.encode(scaled))
                self.frames += 1
        except (av.error.FFmpegError, ValueError) as exc:
            raise TranscodeError(f"{self.codec} failed: {exc}") from exc
        finally:
            self.cpu_seconds += time.thread_time() - started
        out: list[EncodedFrame] = []
        for packet in packets:
            if packet.pts is None:
                continue
            data, _ = annexb_to_avcc(bytes(packet))
            if data:
                out.append(EncodedFrame(data, int(packet.pts), bool(packet.is_keyframe)))
        return out

    def close(self) -> None:
        """Release the encoder (libavcodec frees it with the context object)."""
        del self._cc


def rendition_unit(frame: EncodedFrame, composition_offset: int, arrival: float) -> MediaUnit:
    """The :class:`MediaUnit` of an encoded frame: the source's pts, and a dts shifted by the
    source keyframes' composition offset (module docstring: alignment)."""
    return MediaUnit(TrackKind.VIDEO, frame.pts - composition_offset, frame.pts, frame.keyframe,
                     frame.data, arrival)


def frame_rate_of(deltas: list[int]) -> float:
    """The frame rate from video dts deltas (90 kHz), the median one; 30 when unknown."""
    positive = sorted(d for d in deltas if d > 0)
    if not positive:
        return 30.0
    median = positive[len(positive) // 2]
    return max(1.0, min(240.0, CLOCK_RATE / median))
