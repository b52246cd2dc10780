"""Admin API for recordings (list, keep, delete) over a real aiohttp server, and retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from appliance.api.admin_app import build_admin_app
from appliance.api.schema import AdminRecording
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.delivery.service import Delivery
from appliance.state import AppState
from tests.appliance.delivery.recording_factory import record


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[TestClient, AppState]]:  # type: ignore[type-arg]
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    delivery = Delivery(tmp_path, log=service.log)
    await delivery.start()
    state = AppState(config=config, store=store, service=service, ingest=None,  # type: ignore[arg-type]
                     bus=service.bus, delivery=delivery)
    for bid in ("old", "new"):
        _, writer, _ = await record(tmp_path / "recordings", [0.0], seconds=2.0,
                                    broadcast_id=bid)
        writer.close()
    async with TestClient(TestServer(build_admin_app(state))) as tc:
        yield tc, state
    await delivery.close()
    await service.close()
    await store.close()


async def test_list_keep_delete(admin: tuple[TestClient, AppState]) -> None:  # type: ignore[type-arg]
    tc, state = admin
    r = await tc.get("/v1/recordings")
    listed = [AdminRecording.from_dict(d) for d in await r.json()]
    assert {x.broadcast_id for x in listed} == {"old", "new"}
    rec = next(x for x in listed if x.broadcast_id == "old")
    assert rec.state == "complete" and 1.5 < rec.duration < 2.5 and rec.segments >= 2
    assert rec.recording_url.endswith("/vod/old/index.m3u8") and not rec.kept
    r = await tc.post("/v1/recordings/old/keep", json={"keep": True})
    assert (await r.json())["kept"] is True
    # Retention with a zero disk cap deletes everything unkept, never the kept one.
    assert state.delivery is not None
    items = await state.delivery.retention_items(lambda _id: None)
    assert await state.delivery.apply_retention(items, disk_cap=0) == ["new"]
    assert not (Path(state.config.data_dir) / "recordings" / "new").exists()
    r = await tc.post("/v1/recordings/old/keep", json={"keep": False})
    assert (await r.json())["kept"] is False
    r = await tc.delete("/v1/recordings/old")
    assert (await r.json())["deleted"] is True
    assert not (Path(state.config.data_dir) / "recordings" / "old").exists()  # disk freed
    assert (await tc.get("/v1/recordings")).status == 200
    assert await (await tc.get("/v1/recordings")).json() == []


@pytest.mark.parametrize("bad", ["..", "%2e%2e", "a%2fb", "x" * 65, "a%00"])
async def test_hostile_ids_are_404(admin: tuple[TestClient, AppState], bad: str) -> None:  # type: ignore[type-arg]
    tc, _ = admin
    for method, path in (("GET", f"/v1/recordings/{bad}"), ("DELETE", f"/v1/recordings/{bad}"),
                         ("POST", f"/v1/recordings/{bad}/keep")):
        r = await tc.request(method, path)
        assert r.status == 404, (method, path)


async def test_keep_validates_its_body(admin: tuple[TestClient, AppState]) -> None:  # type: ignore[type-arg]
    tc, _ = admin
    assert (await tc.post("/v1/recordings/old/keep", json={"keep": "yes"})).status == 400
    assert (await tc.post("/v1/recordings/old/keep", data=b"{")).status == 400
    assert (await tc.post("/v1/recordings/old/keep", json=[1])).status == 400


async def test_urls_come_from_memory(admin: tuple[TestClient, AppState]) -> None:  # type: ignore[type-arg]
    """``recording_url``/``thumbnail_url`` answer without disk I/O, from what start() found."""
    from dataclasses import dataclass

    @dataclass
    class B:
        id: str

    _, state = admin
    delivery = Delivery(Path(state.config.data_dir))
    delivery.base_url = lambda: "http://h"
    assert delivery.recording_url(B("old")) is None  # before start(): nothing known
    await delivery.start()
    assert delivery.recording_url(B("old")) == "http://h/vod/old/index.m3u8"
    assert delivery.recording_url(B("nope")) is None
    assert delivery.thumbnail_url(B("old")) is None  # the factory makes no thumbnails
    await delivery.delete("old")
    assert delivery.recording_url(B("old")) is None
    await delivery.close()
