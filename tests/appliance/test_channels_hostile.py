"""Bad input against the channel/broadcast parsers and routes: truncated, oversized, hostile and
flooding input; property tests that each parser raises only its own error type."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.admin_app import build_admin_app
from appliance.api.public import build_public_app
from appliance.channels import ChannelService, PublishRefused
from appliance.config import load_config
from appliance.db import Store
from appliance.domain import ID_RE, ChannelFields, ValidationError, split_key
from appliance.state import AppState
from tui.screens.plan_form import parse_start

# ---- pure parsers: only their own error type, whatever the input ------------------------------


@given(st.text(max_size=400))
def test_split_key_never_raises_and_names_only_wellformed_ids(text: str) -> None:
    channel = split_key(text)
    assert channel is None or ID_RE.fullmatch(channel)


@given(title=st.text(max_size=300), summary=st.text(max_size=2100),
       tags=st.lists(st.text(max_size=50), max_size=15), image=st.text(max_size=1100),
       retention=st.one_of(st.none(), st.integers(-10, 10_000), st.booleans()))
@settings(max_examples=300)
def test_channel_fields_raise_only_validation_error(title: str, summary: str, tags: list[str],
                                                   image: str, retention: int | None) -> None:
    try:
        f = ChannelFields(title, summary, tuple(tags), image,
                          retention_days=retention).validated()
    except ValidationError:
        return
    assert f.title and len(f.title) <= 200 and "\n" not in f.title
    assert f.retention_days is None or 1 <= f.retention_days <= 3650


@given(st.text(max_size=100))
def test_plan_form_start_parser_never_raises(text: str) -> None:
    value = parse_start(text)
    assert value is None or math.isfinite(value)


# ---- the service and the routes -----------------------------------------------------------------


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[tuple[TestClient, TestClient, AppState]]:  # type: ignore[type-arg]
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    state = AppState(config=config, store=store, service=service, ingest=None,  # type: ignore[arg-type]
                     bus=service.bus)
    async with TestClient(TestServer(build_admin_app(state))) as admin, \
            TestClient(TestServer(build_public_app(state))) as public:
        yield admin, public, state
    await service.close()
    await store.close()


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_authorize_raises_only_publish_refused(text: str) -> None:
    async def run() -> None:
        service = ChannelService(load_config(environ={}), None)  # type: ignore[arg-type]
        try:
            service.authorize(text)
        except PublishRefused as exc:
            assert exc.auth and exc.description.startswith("invalid stream key")
        else:
            raise AssertionError("an unknown key was accepted")

    asyncio.run(run())


HOSTILE_BODIES: list[tuple[bytes, int]] = [
    (b"", 400), (b"{", 400), (b"[]", 400), (b'"x"', 400), (b"\xff\xfe", 400),
    (b'{"title": 5}', 400), (b'{"title": "x", "tags": "music"}', 400),
    (b'{"title": "x", "tags": [1]}', 400), (b'{"title": "x", "record": "yes"}', 400),
    (b'{"title": "x", "retention_days": 1.5}', 400),
    (b'{"title": "x", "retention_days": true}', 400),
    (b'{"title": "x", "retention_days": 0}', 400),
    (b'{"title": "\\u0000x"}', 400), (b'{"title": "' + b"t" * 300 + b'"}', 400),
    (b'{"title": "x", "image": "javascript:alert(1)"}', 400),
    (b'{"a": ' * 5000 + b"1" + b"}" * 5000, 400),  # deep nesting: refused, no RecursionError
    (b'{"title": "' + b"x" * (300 * 1024) + b'"}', 413),  # over the admin body limit
]


@pytest.mark.parametrize(("body", "status"), HOSTILE_BODIES,
                         ids=[f"body{i}" for i in range(len(HOSTILE_BODIES))])
async def test_hostile_channel_bodies_are_refused(apps: tuple[TestClient, TestClient, AppState],  # type: ignore[type-arg]
                                                  body: bytes, status: int) -> None:
    admin, _, state = apps
    r = await admin.post("/v1/channels", data=body,
                         headers={"Content-Type": "application/json"})
    assert r.status == status, await r.text()
    assert await state.service.list_channels() == []


@pytest.mark.parametrize("starts", ["soon", None, True, float("nan"), float("inf"), -1e308,
                                    1e308, 0])
async def test_hostile_plan_starts_are_refused(apps: tuple[TestClient, TestClient, AppState],  # type: ignore[type-arg]
                                               starts: object) -> None:
    admin, _, state = apps
    channel, _ = await state.service.create_channel(ChannelFields("x"))
    literal = {None: "null", True: "true", "soon": '"soon"'}.get(starts, repr(starts))
    literal = literal.replace("nan", "NaN").replace("inf", "Infinity")
    body = f'{{"channel_id": "{channel.id}", "title": "t", "starts": {literal}}}'
    r = await admin.post("/v1/broadcasts", data=body.encode(),
                         headers={"Content-Type": "application/json"})
    assert r.status == 400, await r.text()
    assert (await r.json())["field"] == "starts"


@pytest.mark.parametrize("path", [
    "/v1/channels/..", "/v1/channels/%2e%2e", "/v1/channels/" + "a" * 33, "/v1/channels/ABCDEF",
    "/v1/channels/abc%00def", "/v1/broadcasts/..%2f..", "/v1/broadcasts/" + "z" * 500,
    "/v1/streams/%ff%fe", "/v1/broadcasts/abcdef123456/chat"])
async def test_hostile_admin_ids_are_404(apps: tuple[TestClient, TestClient, AppState],  # type: ignore[type-arg]
                                         path: str) -> None:
    admin, _, _ = apps
    r = await admin.get(path)
    assert r.status in (404, 503), (path, r.status)  # 503: chat needs Nostr (not started)


@pytest.mark.parametrize("path", [
    "/api/channels/..", "/api/channels/" + "a" * 40, "/api/broadcasts/%00",
    "/api/broadcasts/abcdef123456", "/api/streams/ABC", "/hls/../index.m3u8",
    "/hls/abcdef123456/index.m3u8", "/watch/abcdef123456", "/c/abcdef123456"])
async def test_hostile_public_ids_are_404(apps: tuple[TestClient, TestClient, AppState],  # type: ignore[type-arg]
                                          path: str) -> None:
    _, public, _ = apps
    r = await public.get(path)
    assert r.status == 404, (path, r.status)


async def test_bad_status_filters(apps: tuple[TestClient, TestClient, AppState]) -> None:  # type: ignore[type-arg]
    admin, public, _ = apps
    assert (await public.get("/api/broadcasts?status=bogus")).status == 400
    assert (await admin.get("/v1/broadcasts?status=bogus")).status == 400
    assert (await admin.get("/v1/broadcasts?limit=x")).status == 400
    assert (await admin.get("/v1/broadcasts?channel=../x")).status == 400


async def test_a_flood_of_plans_and_channels_stays_consistent(
        apps: tuple[TestClient, TestClient, AppState]) -> None:  # type: ignore[type-arg]
    """200 concurrent creates and plans: every one answered, all listed, none lost."""
    admin, public, state = apps
    made = await asyncio.gather(*(admin.post("/v1/channels", json={"title": f"c{i}"})
                                  for i in range(100)))
    ids = [(await r.json())["id"] for r in made]
    starts = state.service.clock.time() + 3600
    plans = await asyncio.gather(*(admin.post("/v1/broadcasts", json={
        "channel_id": cid, "title": "p", "starts": starts}) for cid in ids))
    assert all(r.status == 201 for r in plans)
    assert len(await (await public.get("/api/channels")).json()) == 100
    planned = await (await public.get("/api/broadcasts?status=planned")).json()
    assert len(planned) == 100
