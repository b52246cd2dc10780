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


def test_every_warning_has_a_reason_naming_the_obs_setting() -> None:
    """A 5 s keyframe interval and B-frames: verdict warn, each reason with its OBS fix."""
    from media.health import HealthSnapshot

    base = dict(bitrate_kbps=3000.0, video_kbps=2900.0, audio_kbps=100.0, fps=30.0,
                width=1280, height=720, video_codec="avc1.64001f", audio_codec="mp4a.40.2",
                sample_rate=48000, channels=2, units=100, bytes_in=1000)
    ok = HealthSnapshot(keyframe_interval=2.0, bframes=False, **base)  # type: ignore[arg-type]
    assert ok.verdict() == "ok" and ok.reasons() == []
    bad = HealthSnapshot(keyframe_interval=8.0, bframes=True, **base)  # type: ignore[arg-type]
    assert bad.verdict() == "warn"
    reasons = bad.reasons()
    assert any("keyframe interval 8 s" in r and "Keyframe Interval: 2 s" in r for r in reasons)
    assert any("B-frames" in r and "B-frames: 0" in r for r in reasons)
    slow = HealthSnapshot(keyframe_interval=2.0, bframes=False,
                          **{**base, "fps": 5.0})  # type: ignore[arg-type]
    assert slow.verdict() == "warn" and "5 fps" in slow.reasons()[0]


def test_publisher_that_stops_sending_keyframes_warns_with_the_fix() -> None:
    """Issue 10 item 7: after one IDR and then none (x264 keyint=infinite) the verdict warns
    while the GOP is still running, naming the OBS setting, not only after a next keyframe."""
    import dataclasses

    s = make_stream(2.0, gop=25, audio=False)
    video = list(s.units)
    meter = HealthMeter()
    meter.set_config(s.video, None)
    step = video[1].dts - video[0].dts
    for i in range(25 * 10):  # 10 s: the first frame is the only keyframe
        u = video[i % len(video)]
        meter.add(dataclasses.replace(u, dts=i * step, pts=i * step, keyframe=i == 0))
    snap = meter.snapshot()
    assert snap.keyframe_interval is not None and snap.keyframe_interval > 9
    assert snap.verdict() == "warn" and snap.keyframe_overdue
    assert any("Keyframe Interval" in r for r in snap.reasons())
    # The reason does not change as the GOP keeps growing (the event log records changes).
    for i in range(25 * 10, 25 * 12):
        u = video[i % len(video)]
        meter.add(dataclasses.replace(u, dts=i * step, pts=i * step, keyframe=False))
    assert meter.snapshot().reasons() == snap.reasons()
