"""Ingest health figures from a real encoded stream."""

from __future__ import annotations

from media.health import HealthMeter
from tests.media.hls.media_factory import make_stream


def test_figures_from_real_media() -> None:
    s = make_stream(4.0, gop=25)
    meter = HealthMeter()
    meter.set_config(s.video, s.audio)
    for u in s.units:
        meter.add(u)
    snap = meter.snapshot()
    assert snap.fps is not None and abs(snap.fps - 25) < 0.5
    assert snap.keyframe_interval == 1.0
    assert snap.bframes is False
    assert snap.width == 320 and snap.height == 240
    assert snap.video_codec is not None and snap.video_codec.startswith("avc1.")
    assert snap.audio_codec == "mp4a.40.2" and snap.sample_rate == 48000
    assert snap.bitrate_kbps is not None and snap.bitrate_kbps > 0
    assert snap.verdict() == "ok"


def test_bframes_detected_from_reordering() -> None:
    s = make_stream(2.0, gop=25, bframes=2, audio=False)
    meter = HealthMeter()
    for u in s.units:
        meter.add(u)
    assert meter.snapshot().bframes is True


def test_starting_until_measurable() -> None:
    assert HealthMeter().snapshot().verdict() == "starting"
