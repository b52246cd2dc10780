"""Admin API DTOs survive the JSON round trip, and tolerate fields they don't know."""

from __future__ import annotations

import json

from appliance.api.schema import (
    AdminStream,
    ChatMessage,
    IngestInfo,
    LogEvent,
    RelayInfo,
    Status,
    StreamCredentials,
)

INGEST = IngestInfo(7, "127.0.0.1:5000", 1.0, 3000.0, 30.0, 1280, 720, 2.0, False,
                    "avc1.64001f", "mp4a.40.2", 48000, 2, "ok", 10, 0, 1)


def _roundtrip(obj):  # type: ignore[no-untyped-def]
    return type(obj).from_dict(json.loads(json.dumps(obj.to_dict())))


def test_nested_dtos_roundtrip_through_json() -> None:
    stream = AdminStream("abc123", "t", "s", ["a"], "", "live", 1.0, 2.0, None, 3, 4, 5,
                         "w", "h", publishing=True, ingest=INGEST)
    assert _roundtrip(stream) == stream
    status = Status("1", 1.0, 2.0, "p", "r", "d", 1, 1, 1, 1, 1, 0, 0,
                    [LogEvent(1, 1.0, "warning", "ingest.refused", None, "m")])
    assert _roundtrip(status) == status
    for dto in (StreamCredentials("i", "t", "rtmp://x/live", "hk_k", "w", "h"),
                ChatMessage("e" * 64, "abc123", "p" * 64, 5, "hi", zap_msats=21000),
                RelayInfo("ws://127.0.0.1:1", "connected", outbox_depth=2)):
        assert _roundtrip(dto) == dto


def test_unknown_fields_from_a_newer_appliance_are_ignored() -> None:
    data = RelayInfo("ws://r", "failed").to_dict() | {"added_later": True}
    assert RelayInfo.from_dict(data) == RelayInfo("ws://r", "failed")
