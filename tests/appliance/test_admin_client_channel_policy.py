"""The typed admin client (the TUI's and CLI's) sends a channel's recording policy (record,
retention_days; issue 9) and reads it back in the pre-channels stream view, against the real
admin app on a real Unix socket."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from appliance.api.admin_app import build_admin_app
from appliance.api.admin_client import ApplianceError, StreamDraft, UnixSocketAdminClient
from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.state import AppState


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[UnixSocketAdminClient]:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    state = AppState(config=config, store=store, service=service, ingest=None,  # type: ignore[arg-type]
                     bus=service.bus)
    runner = web.AppRunner(build_admin_app(state))
    await runner.setup()
    # A short directory: a Unix socket path must fit in sun_path (108 bytes).
    with tempfile.TemporaryDirectory(prefix="hadm") as short:
        sock = Path(short) / "a.sock"
        await web.UnixSite(runner, str(sock)).start()
        async with UnixSocketAdminClient(sock) as client:
            yield client
        await runner.cleanup()
    await service.close()
    await store.close()


async def test_record_and_retention_round_trip(admin: UnixSocketAdminClient) -> None:
    creds = await admin.create_stream(StreamDraft("Talks", record=False, retention_days=30))
    [stream] = await admin.list_streams()
    assert (stream.id, stream.record, stream.retention_days) == (creds.id, False, 30)

    edited = await admin.update_stream(creds.id, StreamDraft("Talks", record=True))
    assert (edited.record, edited.retention_days) == (True, None)  # empty: the default
    [stream] = await admin.list_streams()
    assert (stream.record, stream.retention_days) == (True, None)


@pytest.mark.parametrize("days", [0, -1, 3651])
async def test_a_bad_retention_names_its_field(admin: UnixSocketAdminClient, days: int) -> None:
    with pytest.raises(ApplianceError) as err:
        await admin.create_stream(StreamDraft("Talks", retention_days=days))
    assert (err.value.status, err.value.field) == (400, "retention_days")
    assert await admin.list_streams() == []
