"""The stream aggregate against a real SQLite file: keys, lifecycle, durability."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.db import Store
from appliance.db import queries as q
from appliance.domain import StreamFields, StreamState, ValidationError
from appliance.streams import PublishRefused, StreamEnded, StreamService, split_key


@pytest.fixture
async def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RTMP_GRACE_SECONDS": "0.2"})
    store = await Store.open(tmp_path / "h.db")
    svc = StreamService(config, store)
    await svc.start()
    yield svc
    await svc.close()
    await store.close()


async def test_keys_are_random_shown_once_and_stored_hashed(service: StreamService,
                                                            tmp_path: Path) -> None:
    stream, key = await service.create(StreamFields("Hello"))
    _, key2 = await service.create(StreamFields("Other"))
    assert key != key2 and len(key) >= 3 + 12 + 1 + 32  # ≥ 192 random bits after the id
    assert split_key(key) == (stream.id, key)
    with sqlite3.connect(tmp_path / "h.db") as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump and key.split("_", 2)[2] not in dump
    assert service.authorize(key) == stream.id


@pytest.mark.parametrize("bad", ["", "hk_", "hk__x", "nonsense", "hk_abcdef123456_wrong",
                                 "hk_" + "z" * 12 + "_" + "a" * 32])
async def test_wrong_keys_get_the_same_refusal(service: StreamService, bad: str) -> None:
    await service.create(StreamFields("x"))
    with pytest.raises(PublishRefused) as info:
        service.authorize(bad)
    assert info.value.code == "NetStream.Publish.BadName" and info.value.auth


async def test_rotate_invalidates_the_old_key(service: StreamService) -> None:
    stream, old = await service.create(StreamFields("x"))
    _, new = await service.rotate_key(stream.id)
    with pytest.raises(PublishRefused):
        service.authorize(old)
    assert service.authorize(new) == stream.id


async def test_end_is_final(service: StreamService) -> None:
    stream, key = await service.create(StreamFields("x"))
    ended = await service.end(stream.id)
    assert ended.status is StreamState.ENDED and ended.ended_at is not None
    with pytest.raises(PublishRefused):
        service.authorize(key)
    with pytest.raises(StreamEnded):
        await service.rotate_key(stream.id)
    with pytest.raises(StreamEnded):
        await service.update(stream.id, StreamFields("y"))


async def test_validation() -> None:
    with pytest.raises(ValidationError, match="title"):
        StreamFields("   ").validated()
    with pytest.raises(ValidationError, match="image"):
        StreamFields("x", image="javascript:alert(1)").validated()
    with pytest.raises(ValidationError, match="tags"):
        StreamFields("x", tags=("two words",)).validated()
    f = StreamFields("  a   b ", tags=("#Music", "music", "Live")).validated()
    assert f.title == "a b" and f.tags == ("music", "live")


async def test_store_rolls_back_a_failed_write(service: StreamService) -> None:
    stream, _ = await service.create(StreamFields("x"))

    def boom(db):  # type: ignore[no-untyped-def]
        q.mark_ended(db, stream.id, 1.0)
        raise RuntimeError("midway")

    with pytest.raises(RuntimeError):
        await service.store.write(boom)
    assert (await service.get(stream.id)).status is StreamState.CREATED


async def test_delete_ends_and_hides_the_stream(service: StreamService) -> None:
    stream, key = await service.create(StreamFields("to delete"))
    kept, _ = await service.create(StreamFields("kept"))
    await service.delete(stream.id)
    assert [s.id for s in await service.list_streams()] == [kept.id]
    with pytest.raises(LookupError):
        await service.get(stream.id)
    with pytest.raises(PublishRefused):
        service.authorize(key)
    # The row stays for history, marked ended and deleted.
    row = await service.store.read(
        lambda db: db.execute("SELECT status, deleted_at FROM streams WHERE id = ?",
                              (stream.id,)).fetchone())
    assert row[0] == "ended" and row[1] is not None
