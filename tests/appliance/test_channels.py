"""The channel/broadcast aggregate against a real SQLite file, with an injected clock and fake
publisher links (our own seams): keys, grace, takeover, planned broadcasts, durability."""

from __future__ import annotations

import asyncio
import heapq
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.bus import BroadcastChanged, BroadcastReason, Event
from appliance.channels import (
    PLANNED_LEAD,
    BroadcastNotFound,
    ChannelService,
    PublishRefused,
)
from appliance.config import load_config
from appliance.db import Store
from appliance.db import queries as q
from appliance.domain import BroadcastStatus, ChannelFields, ValidationError, split_key

GRACE = 60.0


class FakeClock:
    """Wall time that moves only when told to; timers fire in order on :meth:`advance`."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = 0

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(callback)
        self._seq += 1
        heapq.heappush(self._timers, (self.now + delay, self._seq, timer))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = when
            if not timer.cancelled:
                timer.callback()
        self.now = end


@dataclass
class _Timer:
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeLink:
    id: int
    remote: str = "192.0.2.1:5000"
    connected_at: float = 0.0
    ended: list[tuple[str, str]] = field(default_factory=list)

    def end(self, code: str, description: str) -> None:
        self.ended.append((code, description))


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def service(tmp_path: Path, clock: FakeClock) -> AsyncIterator[ChannelService]:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RTMP_GRACE_SECONDS": str(GRACE)})
    store = await Store.open(tmp_path / "h.db")
    svc = ChannelService(config, store, clock=clock)
    await svc.start()
    yield svc
    await svc.close()
    await store.close()


async def _next(sub: object, reason: BroadcastReason) -> BroadcastChanged:
    async with asyncio.timeout(5):
        while True:
            ev: Event = await sub.get()  # type: ignore[attr-defined]
            if isinstance(ev, BroadcastChanged) and ev.reason is reason:
                return ev


# ---- keys ----------------------------------------------------------------------------------


async def test_keys_are_random_shown_once_and_stored_hashed(service: ChannelService,
                                                            tmp_path: Path) -> None:
    channel, key = await service.create_channel(ChannelFields("Hello"))
    _, key2 = await service.create_channel(ChannelFields("Other"))
    assert key != key2 and len(key) >= 3 + 12 + 1 + 32  # ≥ 192 random bits after the id
    assert split_key(key) == channel.id
    with sqlite3.connect(tmp_path / "h.db") as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump and key.split("_", 2)[2] not in dump
    assert service.authorize(key) == channel.id


@pytest.mark.parametrize("bad", ["", "hk_", "hk__x", "nonsense", "hk_abcdef123456_wrong",
                                 "hk_" + "z" * 12 + "_" + "a" * 32, "hk_ABC_def",
                                 "hk_" + "a" * 300 + "_x"])
async def test_wrong_keys_get_the_same_refusal(service: ChannelService, bad: str) -> None:
    await service.create_channel(ChannelFields("x"))
    with pytest.raises(PublishRefused) as info:
        service.authorize(bad)
    assert info.value.code == "NetStream.Publish.BadName" and info.value.auth
    assert info.value.description == "invalid stream key (check OBS Settings → Stream)"


async def test_rotate_invalidates_the_old_key_and_drops_its_publisher(
        service: ChannelService) -> None:
    channel, old = await service.create_channel(ChannelFields("x"))
    link = FakeLink(1)
    service.attach(service.authorize(old), link)
    _, new = await service.rotate_key(channel.id)
    with pytest.raises(PublishRefused):
        service.authorize(old)
    assert service.authorize(new) == channel.id
    assert link.ended == [("NetStream.Publish.BadName", "stream key rotated")]


async def test_a_channel_key_outlives_its_broadcasts(service: ChannelService,
                                                    clock: FakeClock) -> None:
    channel, key = await service.create_channel(ChannelFields("weekly"))
    async with service.bus.subscribe(BroadcastChanged) as sub:
        first = service.attach(service.authorize(key), FakeLink(1))
        await _next(sub, BroadcastReason.STARTED)
        b = await service.end_broadcast(first.broadcast_id)
        assert b.status is BroadcastStatus.ENDED and b.end_reason == "ended by the operator"
        second = service.attach(service.authorize(key), FakeLink(2))  # same key, a week later
        await _next(sub, BroadcastReason.STARTED)
    assert second.broadcast_id != first.broadcast_id
    broadcasts = await service.list_broadcasts(channel.id)
    assert [(x.id, x.status) for x in broadcasts] == [
        (second.broadcast_id, BroadcastStatus.LIVE), (first.broadcast_id, BroadcastStatus.ENDED)]


# ---- grace and takeover (injected clock, fake links) ---------------------------------------


async def test_reconnect_within_grace_continues_the_same_broadcast(
        service: ChannelService, clock: FakeClock) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))
    async with service.bus.subscribe(BroadcastChanged) as sub:
        first, second = FakeLink(1), FakeLink(2)
        lb = service.attach(channel.id, first)
        await _next(sub, BroadcastReason.STARTED)
        service.detach(channel.id, first, "connection lost")
        await _next(sub, BroadcastReason.PUBLISHER_LOST)
        assert lb.grace_until == clock.now + GRACE and lb.link is None
        clock.advance(GRACE - 1)
        again = service.attach(channel.id, second)
        ev = await _next(sub, BroadcastReason.RECONNECTED)
        assert again is lb and ev.broadcast_id == lb.broadcast_id
        assert lb.reconnects == 1 and lb.grace_until is None
        clock.advance(GRACE * 2)  # the cancelled grace timer must not end it
        await asyncio.sleep(0)
    b = await service.get_broadcast(lb.broadcast_id)
    assert b.status is BroadcastStatus.LIVE and not lb.ended


async def test_grace_expiry_ends_the_broadcast_and_the_next_publish_is_a_new_one(
        service: ChannelService, clock: FakeClock) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))
    async with service.bus.subscribe(BroadcastChanged) as sub:
        link = FakeLink(1)
        lb = service.attach(channel.id, link)
        await _next(sub, BroadcastReason.STARTED)
        service.detach(channel.id, link, "connection lost")
        clock.advance(GRACE + 0.001)
        ended = await _next(sub, BroadcastReason.ENDED)
        assert ended.broadcast_id == lb.broadcast_id and lb.ended
        assert service.live_broadcast(channel.id) is None
        # Its final window stays playable by broadcast id for a while.
        assert service.runtime(lb.broadcast_id) is lb
        nxt = service.attach(channel.id, FakeLink(2))
        await _next(sub, BroadcastReason.STARTED)
    assert nxt.broadcast_id != lb.broadcast_id
    b = await service.get_broadcast(lb.broadcast_id)
    assert b.status is BroadcastStatus.ENDED and b.end_reason == "publisher did not return"
    assert b.ended_at == pytest.approx(clock.now, abs=1)


async def test_same_key_takeover_is_immediate(service: ChannelService) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))
    stale, fresh = FakeLink(1, "192.0.2.1:1"), FakeLink(2, "192.0.2.2:2")
    lb = service.attach(channel.id, stale)
    assert service.attach(channel.id, fresh) is lb
    assert stale.ended == [("NetStream.Unpublish.Success", "replaced by a new connection")]
    assert lb.link is fresh and lb.grace_until is None and lb.accepts(fresh)
    assert not lb.accepts(stale)
    service.detach(channel.id, stale, "late close of the replaced connection")  # ignored
    assert lb.link is fresh and lb.grace_until is None


async def test_operator_end_skips_the_grace_and_says_no_waiting(
        service: ChannelService, clock: FakeClock) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))
    link = FakeLink(1)
    lb = service.attach(channel.id, link)
    logs: list[str] = []
    async with service.bus.subscribe() as sub:
        await service.end_broadcast(lb.broadcast_id)
        while True:
            try:
                ev = sub._queue.get_nowait()  # drain what was published
            except asyncio.QueueEmpty:
                break
            logs.append(getattr(ev, "message", ""))
    assert link.ended == [("NetStream.Publish.BadName", "ended by the operator")]
    assert not any("waiting" in m for m in logs), logs
    assert lb.ended


# ---- planned broadcasts ----------------------------------------------------------------------


async def test_a_publish_takes_the_channels_due_planned_broadcast(
        service: ChannelService, clock: FakeClock) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))
    later = await service.plan(channel.id, "Next month", clock.now + 30 * 86400)
    soon = await service.plan(channel.id, "Tonight", clock.now + PLANNED_LEAD / 2)
    assert soon.status is BroadcastStatus.PLANNED and soon.title == "Tonight"
    lb = service.attach(channel.id, FakeLink(1))
    assert lb.broadcast_id == soon.id
    await service.end_broadcast(soon.id)
    b = await service.get_broadcast(soon.id)
    assert b.status is BroadcastStatus.ENDED and b.title == "Tonight"
    assert b.started_at is not None
    lb2 = service.attach(channel.id, FakeLink(2))
    assert lb2.broadcast_id not in (soon.id, later.id)  # next month's is not due yet
    assert (await service.get_broadcast(later.id)).status is BroadcastStatus.PLANNED


async def test_plan_validation(service: ChannelService, clock: FakeClock) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))
    with pytest.raises(ValidationError, match="starts"):
        await service.plan(channel.id, "x", clock.now - 3 * 86400)
    with pytest.raises(ValidationError, match="title"):
        await service.plan(channel.id, "  ", clock.now + 60)
    with pytest.raises(LookupError):
        await service.plan("abcdef123456", "x", clock.now + 60)


async def test_cancelling_a_plan_ends_it_without_a_start(service: ChannelService,
                                                        clock: FakeClock) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))
    plan = await service.plan(channel.id, "Maybe", clock.now + 60)
    b = await service.end_broadcast(plan.id)
    assert b.status is BroadcastStatus.ENDED and b.started_at is None
    assert service.attach(channel.id, FakeLink(1)).broadcast_id != plan.id


# ---- fields, durability, deletion --------------------------------------------------------------


async def test_validation() -> None:
    with pytest.raises(ValidationError, match="title"):
        ChannelFields("   ").validated()
    with pytest.raises(ValidationError, match="image"):
        ChannelFields("x", image="javascript:alert(1)").validated()
    with pytest.raises(ValidationError, match="tags"):
        ChannelFields("x", tags=("two words",)).validated()
    with pytest.raises(ValidationError, match="retention_days"):
        ChannelFields("x", retention_days=0).validated()
    with pytest.raises(ValidationError, match="title"):
        ChannelFields("a\x1bb").validated()
    f = ChannelFields("  a   b ", tags=("#Music", "music", "Live")).validated()
    assert f.title == "a b" and f.tags == ("music", "live") and f.record


async def test_edit_while_live_renames_the_live_broadcast_but_not_the_past(
        service: ChannelService, clock: FakeClock) -> None:
    channel, _ = await service.create_channel(ChannelFields("Old title"))
    past = service.attach(channel.id, FakeLink(1))
    await service.end_broadcast(past.broadcast_id)
    live = service.attach(channel.id, FakeLink(2))
    await service.update_channel(channel.id, ChannelFields("New title", record=False))
    assert (await service.get_broadcast(live.broadcast_id)).title == "New title"
    assert (await service.get_broadcast(past.broadcast_id)).title == "Old title"
    assert not (await service.get_channel(channel.id)).record


async def test_store_rolls_back_a_failed_write(service: ChannelService) -> None:
    channel, _ = await service.create_channel(ChannelFields("x"))

    def boom(db):  # type: ignore[no-untyped-def]
        q.set_key_hash(db, channel.id, "0" * 64)
        raise RuntimeError("midway")

    with pytest.raises(RuntimeError):
        await service.store.write(boom)
    hashes = await service.store.read(q.key_hashes)
    assert "0" * 64 not in hashes


async def test_delete_ends_and_hides_the_channel(service: ChannelService) -> None:
    channel, key = await service.create_channel(ChannelFields("to delete"))
    kept, _ = await service.create_channel(ChannelFields("kept"))
    lb = service.attach(channel.id, FakeLink(1))
    async with service.bus.subscribe(BroadcastChanged) as sub:
        await service.delete_channel(channel.id)
        assert (await _next(sub, BroadcastReason.DELETED)).broadcast_id == lb.broadcast_id
    assert [c.id for c in await service.list_channels()] == [kept.id]
    with pytest.raises(LookupError):
        await service.get_channel(channel.id)
    with pytest.raises(BroadcastNotFound):
        await service.get_broadcast(lb.broadcast_id)
    with pytest.raises(PublishRefused):
        service.authorize(key)
    counts = await service.store.read(q.counts)
    assert (counts.channels, counts.broadcasts_live) == (1, 0)  # deleted ones are not counted


async def test_restart_gives_a_live_broadcast_its_grace(tmp_path: Path) -> None:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RTMP_GRACE_SECONDS": str(GRACE)})
    clock = FakeClock()
    store = await Store.open(tmp_path / "h.db")
    svc = ChannelService(config, store, clock=clock)
    await svc.start()
    channel, _ = await svc.create_channel(ChannelFields("x"))
    lb = svc.attach(channel.id, FakeLink(1))
    await svc.store.read(lambda db: None)
    await asyncio.sleep(0.05)  # the attach write
    lb._abort()
    await store.close()  # a crash: no orderly close of the service

    store = await Store.open(tmp_path / "h.db")
    svc2 = ChannelService(config, store, clock=clock)
    await svc2.start()
    again = svc2.live_broadcast(channel.id)
    assert again is not None and again.broadcast_id == lb.broadcast_id
    assert again.grace_until == clock.now + GRACE
    assert svc2.attach(channel.id, FakeLink(2)) is again  # OBS came back: same broadcast
    await svc2.close()
    await store.close()


async def test_the_next_broadcast_on_a_channel_never_reuses_a_media_object_name(
        service: ChannelService, clock: FakeClock) -> None:
    """/hls/{channel}/… outlives a broadcast and media objects are cacheable for 60 s: the next
    broadcast's seg-/part-/init- names never repeat one the previous broadcast served, even when
    it starts within the same second (first_msn from the clock and the previous last msn)."""
    from tests.media.hls.media_factory import make_stream

    stream = make_stream(4.0)

    def serve(lb: object) -> set[str]:
        muxer = lb.muxer  # type: ignore[attr-defined]
        muxer.set_config(stream.video, stream.audio)
        for unit in stream.units:
            muxer.push(unit)
        text = (muxer.playlist(low_latency=True) or "") + (muxer.playlist() or "")
        names = set(re.findall(r"(?:init|seg|part)-[0-9-]+\.(?:mp4|m4s)", text))
        assert names
        return names

    channel, _ = await service.create_channel(ChannelFields("x"))
    async with service.bus.subscribe(BroadcastChanged) as sub:
        link = FakeLink(1)
        first = service.attach(channel.id, link)
        await _next(sub, BroadcastReason.STARTED)
        used = serve(first)
        service.detach(channel.id, link, "connection lost")
        clock.advance(GRACE + 0.001)
        await _next(sub, BroadcastReason.ENDED)
        second = service.attach(channel.id, FakeLink(2))
        await _next(sub, BroadcastReason.STARTED)
    assert second.broadcast_id != first.broadcast_id
    assert not used & serve(second)
