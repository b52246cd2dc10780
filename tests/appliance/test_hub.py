"""Media fan-out: slow readers drop and count, never stall the publisher."""

from __future__ import annotations

import asyncio

from appliance.hub import Discontinuity, Publisher
from media.units import CodecConfig, MediaUnit, TrackKind, VideoConfig

# The hub never looks inside a config; any well-typed one will do.
_VIDEO = VideoConfig(avcc=b"", sps=(b"\x67",), pps=(b"\x68",), nal_length_size=4, width=16,
                     height=16, profile_idc=100, level_idc=31, constraint_flags=0)


def _unit(i: int, key: bool = False, kind: TrackKind = TrackKind.VIDEO) -> MediaUnit:
    return MediaUnit(kind=kind, dts=i, pts=i, keyframe=key, data=b"x", arrival=0.0)


async def test_reader_gets_config_then_starts_at_a_keyframe() -> None:
    pub = Publisher("s")
    cfg = CodecConfig(None, None)
    reader = pub.add_reader("r")
    assert await reader.get() == cfg
    pub.set_config(CodecConfig(video=_VIDEO, audio=None))
    await reader.get()
    pub.publish(_unit(0))  # not a keyframe: skipped
    pub.publish(_unit(1, key=True))
    pub.publish(_unit(2))
    assert [(await reader.get()).dts for _ in range(2)] == [1, 2]  # type: ignore[union-attr]
    assert reader.frames_discarded == 0


async def test_slow_reader_drops_and_counts_without_blocking() -> None:
    pub = Publisher("s")
    pub.set_config(CodecConfig(video=_VIDEO, audio=None))
    slow = pub.add_reader("slow", capacity=10)
    fast = pub.add_reader("fast", capacity=1000)
    for i in range(25):
        pub.publish(_unit(i, key=(i % 10 == 0)))  # never awaits
    assert slow.frames_discarded > 0
    assert fast.frames_discarded == 0 and fast.backlog == 26  # config + 25 units
    items = []
    while (item := slow.get_nowait()) is not None:
        items.append(item)
    units = [i for i in items if isinstance(i, MediaUnit)]
    assert units and units[0].keyframe  # resumed at a keyframe
    assert isinstance(items[0], CodecConfig)


async def test_close_ends_readers_after_backlog() -> None:
    pub = Publisher("s")
    reader = pub.add_reader("r")
    await reader.get()
    pub.discontinuity()
    pub.close()
    assert isinstance(await reader.get(), Discontinuity)
    assert await asyncio.wait_for(reader.get(), 1) is None
    assert pub.readers == []


def test_frames_discarded_never_goes_down_when_a_lagging_reader_leaves() -> None:
    pub = Publisher("s")
    pub.set_config(CodecConfig(video=_VIDEO, audio=None))
    slow = pub.add_reader("slow", capacity=2)
    for i in range(10):
        pub.publish(_unit(i, key=i == 0))
    before = pub.frames_discarded
    assert before > 0
    slow.close()
    assert pub.frames_discarded == before
    slow.close()  # idempotent: counted once
    assert pub.frames_discarded == before


class _RecordingSink:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def unit(self, unit: MediaUnit) -> None:
        self.calls.append(unit.dts)

    def config(self, config: CodecConfig) -> None:
        self.calls.append(config)

    def discontinuity(self) -> None:
        self.calls.append("disc")

    def close(self) -> None:
        self.calls.append("closed")


def test_sink_is_called_inline_in_order_and_closed_once() -> None:
    pub = Publisher("s")
    cfg = CodecConfig(video=_VIDEO, audio=None)
    pub.set_config(cfg)
    sink = _RecordingSink()
    pub.add_sink(sink)
    assert sink.calls == [cfg]  # primed with the current config
    pub.publish(_unit(0))  # no keyframe gating: the sink decides (the muxer drops it)
    pub.publish(_unit(1, key=True))
    pub.discontinuity()
    pub.close()
    pub.close()
    assert sink.calls == [cfg, 0, 1, "disc", "closed"]


def test_removed_sink_is_not_called_or_closed() -> None:
    pub = Publisher("s")
    sink = _RecordingSink()
    pub.add_sink(sink)
    pub.remove_sink(sink)
    pub.publish(_unit(0, key=True))
    pub.close()
    assert sink.calls == [CodecConfig(None, None)]
