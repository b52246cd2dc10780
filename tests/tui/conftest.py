"""TUI fixtures: a frozen clock (UTC), a frozen cursor, and canned appliance states."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from textual.widgets import Input

from appliance.api.schema import LogEvent, RelayInfo
from tui.testing import T0, FakeAdminClient, make_chat, make_stream


@pytest.fixture(autouse=True)
def frozen_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times render in UTC and the input cursor never blinks, so snapshots are stable."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    yield
    monkeypatch.undo()
    time.tzset()


def clock() -> float:
    return T0


def one_live() -> FakeAdminClient:
    s = make_stream(1, viewers=12, title="Friday jazz night")
    return FakeAdminClient(
        [s],
        events=[LogEvent(1, T0 - 600, "info", "live", s.id, "publisher connected from "
                         "192.0.2.10")],
        chat={s.id: [make_chat(s.id, i, text) for i, text in enumerate(
            ["hello from Lisbon", "sound is great", "can you play Blue in Green?",
             "first time here!"])]},
        relays=[RelayInfo("wss://relay.example.org", "connected", last_ok_at=T0 - 5,
                          published=12)])


def many_streams() -> FakeAdminClient:
    streams = [make_stream(n, viewers=n * 3) for n in range(1, 15)]
    streams += [make_stream(20, status="created", title="Sunday rehearsal"),
                make_stream(21, status="ended", title="Last week's set"),
                make_stream(22, verdict="warn", title="Bad keyframes"),
                make_stream(23, publishing=False, title="Dropped out")]
    return FakeAdminClient(streams, relays=[])


def with_errors() -> FakeAdminClient:
    s = make_stream(1, viewers=2, title="Garage band", verdict="warn")
    events = [
        LogEvent(1, T0 - 50, "warning", "auth", None,
                 "refused stream key from 203.0.113.9 (3 attempts)"),
        LogEvent(2, T0 - 40, "error", "codec", s.id,
                 "unsupported video codec Sorenson H.263: use H.264 in OBS"),
        LogEvent(3, T0 - 30, "info", "reconnect", s.id, "publisher reconnected within grace"),
        LogEvent(4, T0 - 20, "warning", "relay", None,
                 "wss://relay.example.org: connection refused; retrying in 8 s"),
    ]
    relays = [RelayInfo("wss://relay.example.org", "failed", "connection refused",
                        last_ok_at=T0 - 3600, failures=7, outbox_depth=4),
              RelayInfo("wss://nos.lol", "connected", last_ok_at=T0 - 2, published=30)]
    return FakeAdminClient([s], events=events, relays=relays, chat_available=False)
