"""Crash safety and restart reconciliation of the real process (``kill -9``)."""

from __future__ import annotations

import sqlite3

import pytest

from tests.helpers.appliance import ApplianceProcess
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")


def test_kill9_mid_stream_loses_nothing_and_reconciles(appliance: ApplianceProcess) -> None:
    """kill -9 while live: committed streams survive; the live stream waits, then ends."""
    kept = appliance.create_stream("kept", "--summary", "still here", "--tag", "a")
    live = appliance.create_stream("live at crash")
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{live['stream_key']}", 30)
    try:
        appliance.wait_for(lambda: appliance.playlist(live["id"]))
        appliance.kill9()
    finally:
        pub.wait(15)
    # The database is consistent right after the crash (WAL recovery on open).
    with sqlite3.connect(appliance.data_dir / "hearth.db") as db:
        rows = dict(db.execute("SELECT id, status FROM broadcasts").fetchall())
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert rows == {kept["id"]: "planned", live["id"]: "live"}

    appliance.start()
    listed = {s["id"]: s for s in appliance.cli_json("stream", "list")}
    assert listed[kept["id"]]["title"] == "kept" and listed[kept["id"]]["summary"] == "still here"
    assert listed[kept["id"]]["tags"] == ["a"]
    assert listed[live["id"]]["status"] == "live"  # reconciled: waiting for its publisher
    assert "waiting" in appliance.cli("status").stdout
    # The old key still works within the grace window: OBS reconnecting continues the stream.
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{live['stream_key']}", 3)
    appliance.wait_for(lambda: appliance.playlist(live["id"]))
    assert pub.wait(20) == 0
    appliance.wait_for(
        lambda: appliance.get(f"/api/streams/{live['id']}").json()["status"] == "ended",
        timeout=15)
    with sqlite3.connect(appliance.data_dir / "hearth.db") as db:
        open_sessions = db.execute(
            "SELECT COUNT(*) FROM ingest_sessions WHERE ended_at IS NULL").fetchone()[0]
        reasons = [r[0] for r in db.execute("SELECT end_reason FROM ingest_sessions")]
    assert open_sessions == 0
    assert "appliance restarted" in reasons


def test_live_stream_without_publisher_ends_after_restart(appliance: ApplianceProcess) -> None:
    """A stream left live by a crash ends after the grace window if nobody comes back."""
    live = appliance.create_stream("abandoned")
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{live['stream_key']}", 30)
    appliance.wait_for(lambda: appliance.playlist(live["id"]))
    appliance.kill9()
    pub.wait(15)
    appliance.start()
    appliance.wait_for(
        lambda: appliance.get(f"/api/streams/{live['id']}").json()["status"] == "ended",
        timeout=15)
    # The channel's key outlives the broadcast: the next publish is a new broadcast.
    assert ffmpeg_publish(f"{appliance.rtmp_base}/{live['stream_key']}", 2).wait(20) == 0
    broadcasts = appliance.cli_json("broadcast", "list", "--channel", live["id"])
    assert len(broadcasts) == 2 and broadcasts[1]["id"] == live["id"]
    assert broadcasts[1]["end_reason"] == "publisher did not return"


def test_sigterm_shuts_down_cleanly(appliance: ApplianceProcess) -> None:
    """SIGTERM: exit code 0, socket removed, publisher told."""
    live = appliance.create_stream("graceful")
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{live['stream_key']}", 30)
    appliance.wait_for(lambda: appliance.playlist(live["id"]))
    assert appliance.stop() == 0
    assert pub.wait(15) is not None
    assert not (appliance.data_dir / "admin.sock").exists()
    assert "Traceback" not in appliance.log()
