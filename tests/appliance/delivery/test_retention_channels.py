"""Retention with channels: a channel's retention_days wins over the global default."""

from __future__ import annotations

import json
import time
from pathlib import Path

from appliance.channels import ChannelService
from appliance.config import load_config
from appliance.db import Store
from appliance.delivery.service import Delivery
from appliance.domain import ChannelFields
from appliance.lifecycle import apply_retention
from tests.appliance.delivery.recording_factory import record


def _age(directory: Path, days: float) -> None:
    meta = json.loads((directory / "meta.json").read_text())
    meta["ended_at"] = time.time() - days * 86400
    (directory / "meta.json").write_text(json.dumps(meta))


async def test_channel_retention_days_then_global_default(tmp_path: Path) -> None:
    config = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path),
                                  "HEARTH_RECORDING_MAX_AGE_DAYS": "30"})
    store = await Store.open(tmp_path / "h.db")
    service = ChannelService(config, store)
    await service.start()
    short, _ = await service.create_channel(ChannelFields("short", retention_days=2),
                                            first_broadcast=True)
    default, _ = await service.create_channel(ChannelFields("default"), first_broadcast=True)
    delivery = Delivery(tmp_path)
    for bid in (short.id, default.id, "orphan000001"):
        _, writer, _ = await record(tmp_path / "recordings", [0.0], seconds=2.0,
                                    broadcast_id=bid)
        writer.close()
        _age(tmp_path / "recordings" / bid, 3)  # 3 days old: past 2, within 30
    await delivery.start()
    await apply_retention(delivery, config, store)
    left = sorted(p.name for p in (tmp_path / "recordings").iterdir())
    assert left == sorted([default.id, "orphan000001"])
    _age(tmp_path / "recordings" / default.id, 31)  # past the global default
    await apply_retention(delivery, config, store)
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == ["orphan000001"]
    await delivery.close()
    await service.close()
    await store.close()
