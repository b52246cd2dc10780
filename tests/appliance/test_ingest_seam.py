"""The ingest-agnostic publisher seam (issue 16): any protocol's key goes through the same gate
as RTMP's, and its units join the same broadcast timeline across reconnects and protocol
switches (real SQLite, injected clock, fake links: our own seams)."""

from __future__ import annotations

import itertools
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.channels import ChannelService, PublishRefused
from appliance.config import load_config
from appliance.db import Store
from appliance.domain import ChannelFields
from appliance.ingest import BLOCKED_TEXT, IngestHandler
from appliance.live import LiveBroadcast
from media.units import CodecConfig, MediaUnit, TrackKind
from tests.appliance.test_channels import FakeClock, FakeLink
from tests.media.hls.media_factory import make_stream


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[IngestHandler]:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RTMP_AUTH_FAILURES_PER_IP": "3",
                                  "HEARTH_RTMP_AUTH_FAILURE_DELAY": "0.5"})
    store = await Store.open(tmp_path / "h.db")
    svc = ChannelService(config, store, clock=FakeClock())
    await svc.start()
    handler = IngestHandler(svc, config.rtmp)
    yield handler
    handler.refusals.close()
    await svc.close()
    await store.close()


async def test_check_key_counts_and_blocks_as_rtmp_does(ingest: IngestHandler) -> None:
    """Wrong keys from any protocol are counted per address and block it; the right key is
    still accepted from a blocked address (issue 9 §3)."""
    channel, key = await ingest.service.create_channel(ChannelFields("x"))
    wrong = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    for _ in range(3):
        with pytest.raises(PublishRefused) as info:
            ingest.check_key(wrong, "198.51.100.7")
        assert info.value.auth and 0 <= info.value.delay <= 0.5
    with pytest.raises(PublishRefused) as info:
        ingest.check_key("not a key at all", "198.51.100.7")
    assert info.value.description == BLOCKED_TEXT and info.value.delay == 0.5
    assert ingest.throttle.total_failures == 4
    assert ingest.throttle.blocked("198.51.100.7")
    assert ingest.check_key(key, "198.51.100.7") == channel.id
    assert not ingest.throttle.blocked("203.0.113.1")


def _units(video: list[MediaUnit], start: int) -> list[MediaUnit]:
    base = video[0].dts
    return [MediaUnit(u.kind, u.dts - base + start, u.pts - base + start, u.keyframe, u.data,
                      u.arrival) for u in video]


def _flv_video(unit: MediaUnit) -> bytes:
    first = (0x10 if unit.keyframe else 0x20) | 7
    return bytes([first, 1]) + struct.pack(">i", (unit.pts - unit.dts) // 90)[1:] + unit.data


async def test_units_continue_one_timeline_across_protocol_switches(
        ingest: IngestHandler) -> None:
    """RTMP → units (another protocol) → RTMP on one broadcast: every track strictly
    increasing, each session starting after everything before it, configs deduplicated."""
    svc = ingest.service
    channel, _ = await svc.create_channel(ChannelFields("x"))
    stream = make_stream(1.0, gop=10)
    assert stream.video is not None
    video = stream.of(TrackKind.VIDEO)
    lb: LiveBroadcast = svc.attach(channel.id, FakeLink(1))
    reader = lb.open_reader("test")
    lb.video_tag(0, bytes([0x17, 0, 0, 0, 0]) + stream.video.avcc)
    for u in video:
        lb.video_tag(u.dts // 90, _flv_video(u))
    svc.detach(channel.id, lb.link, "gone")  # type: ignore[arg-type]
    second = FakeLink(2)
    assert svc.attach(channel.id, second) is lb
    config = CodecConfig(stream.video, None)
    lb.publish_units([config, *_units(video, 123_456_789)])  # a clock far from the first
    lb.publish_units([config])  # unchanged: dropped
    svc.detach(channel.id, second, "gone")
    svc.attach(channel.id, FakeLink(3))
    lb.video_tag(0, bytes([0x17, 0, 0, 0, 0]) + stream.video.avcc)
    for u in video:
        lb.video_tag(u.dts // 90, _flv_video(u))
    items = []
    while (item := reader.get_nowait()) is not None:
        items.append(item)
    configs = [i for i in items if isinstance(i, CodecConfig)]
    assert len(configs) == 2  # the primer and the first sequence header only
    dts = [i.dts for i in items if isinstance(i, MediaUnit)]
    assert len(dts) == 3 * len(video)
    assert all(b > a for a, b in itertools.pairwise(dts))
    span = video[-1].dts - video[0].dts
    assert dts[-1] - dts[0] < 3 * span + 3 * 90_000  # no jump towards the foreign clock
    units = [i for i in items if isinstance(i, MediaUnit)]
    assert all(u.pts - u.dts == v.pts - v.dts for u, v in zip(units, video * 3, strict=True))
