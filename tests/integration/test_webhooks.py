"""Webhooks from the real process: an ffmpeg broadcast going live and ending reaches a real
receiver with valid signatures; kill -9 between commit and delivery still delivers, once,
under the id minted before the crash."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli_webhooks import LIST_FIELDS
from tests.helpers.appliance import ApplianceProcess, free_port
from tests.helpers.publishers import FFMPEG, ffmpeg_publish
from tests.helpers.webhook_receiver import ThreadedReceiver

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")

FAST = {"HEARTH_WEBHOOKS_RETRY_BASE": "0.2", "HEARTH_WEBHOOKS_RETRY_CAP": "1",
        "HEARTH_WEBHOOKS_TIMEOUT": "3"}


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    rx = ThreadedReceiver(port=free_port())
    yield rx
    rx.close()


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_broadcast_live_and_ended_reach_a_verifying_receiver(
        data_dir: Path, receiver: ThreadedReceiver) -> None:
    app = ApplianceProcess(data_dir, env_overrides=FAST).start()
    try:
        receiver.start()
        rx = receiver.receiver
        added = app.cli_json("webhook", "add", rx.url, "--event", "broadcast.live",
                             "--event", "broadcast.ended", "--event", "recording.ready")
        rx.secret = added["secret"]
        assert added["secret"] not in app.cli("webhook", "list", "--json").stdout
        channel = app.create_stream("Webhook night")
        pub = ffmpeg_publish(f"{app.rtmp_base}/{channel['stream_key']}", 3)
        assert pub.wait(30) == 0
        # Ends after the 4 s reconnect grace; the recording completes after that.
        _wait(lambda: {"broadcast.ended", "recording.ready"} <= {r.type for r in rx.received},
              40, "broadcast.ended and recording.ready")
        by_type = {r.type: r for r in rx.received}
        assert rx.received[0].type == "broadcast.live"
        assert all(r.signature_ok for r in rx.received)
        live, ended = by_type["broadcast.live"].body, by_type["broadcast.ended"].body
        assert live["data"]["broadcast_id"] == ended["data"]["broadcast_id"]
        assert live["data"]["title"] == "Webhook night" and "Webhook night" in live["content"]
        assert live["data"]["watch_url"].endswith(f"/watch/{live['data']['broadcast_id']}")
        assert ended["data"]["status"] == "ended" and ended["data"]["ended_at"]
        assert len({r.id for r in rx.received}) == len(rx.received)
        [listed] = app.cli_json("webhook", "list")
        assert listed["state"] == "ok" and listed["last_status"] == 204
        assert listed["consecutive_failures"] == 0 and listed["last_error"] is None
        assert set(listed) == set(LIST_FIELDS)  # the --json contract
        # Never logged, even at DEBUG (the test appliance's level).
        assert rx.secret not in app.log()
    finally:
        app.stop()


def test_kill9_between_commit_and_delivery_delivers_once_with_the_same_id(
        data_dir: Path, receiver: ThreadedReceiver) -> None:
    # Long retries: after the first failed attempt nothing is sent again before the crash.
    app = ApplianceProcess(data_dir, env_overrides={
        **FAST, "HEARTH_WEBHOOKS_RETRY_BASE": "1", "HEARTH_WEBHOOKS_RETRY_CAP": "1"}).start()
    rx = receiver.receiver
    added = app.cli_json("webhook", "add", rx.url)  # the receiver is not running yet
    rx.secret = added["secret"]
    wid = added["webhook"]["id"]
    queued = app.cli_json("webhook", "test", wid)
    delivery_id = queued["delivery_id"]
    app.kill9()
    with sqlite3.connect(data_dir / "hearth.db") as db:
        rows = db.execute("SELECT id, state FROM webhook_deliveries").fetchall()
    assert rows == [(delivery_id, "pending")]

    receiver.start()
    app.start()
    try:
        _wait(lambda: rx.received, 20, "the delivery after restart")
        time.sleep(2.5)  # a duplicate would be a retry of a delivered message
        assert [r.id for r in rx.received] == [delivery_id]
        assert rx.received[0].type == "webhook.test" and rx.received[0].signature_ok
        [listed] = app.cli_json("webhook", "list")
        assert listed["state"] == "ok" and listed["pending"] == 0
        # Removing it leaves no rows behind.
        app.cli("webhook", "remove", wid)
        assert app.cli_json("webhook", "list") == []
        out = app.cli("webhook", "remove", wid, check=False)
        assert out.returncode != 0 and "no such webhook" in out.stderr
    finally:
        app.stop()


def test_cli_refuses_bad_input_before_sending(data_dir: Path) -> None:
    app = ApplianceProcess(data_dir)
    # No server needed: validation happens first (the socket is never touched).
    for args in (["ftp://x/"], ["http://x/\x01"], ["http://x/", "--event", "nope"]):
        out = app.cli("webhook", "add", *args, check=False)
        assert out.returncode == 2 and out.stderr.startswith("hearth: "), out.stderr
        assert "Traceback" not in out.stderr
