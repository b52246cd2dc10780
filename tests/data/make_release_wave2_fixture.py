"""Regenerate tests/data/release-wave2.sqlite with the previous release (commit 46c673b: channels,
broadcasts, recordings, webhooks; before visibility, analytics, the ladder and restream).

Run from a checkout of that commit: ``python tests/data/make_release_wave2_fixture.py
tests/data`` (copy this file there first). It drives that release's real ``hearth serve``: a
channel that aired once (a recording) and has recording settings, a channel with a planned
broadcast, a webhook endpoint, and a channel left live by a ``kill -9``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.helpers.publishers import ffmpeg_publish


def main(out: Path) -> None:
    data = short_tmpdir()
    app = ApplianceProcess(data, env_overrides={"HEARTH_RTMP_GRACE_SECONDS": "1"}).start()
    try:
        aired = app.cli_json("channel", "create", "--title", "Friday session", "--tag", "jazz",
                             "--retention-days", "30")
        planned = app.cli_json("channel", "create", "--title", "Sunday rehearsal")
        live = app.cli_json("channel", "create", "--title", "Live at upgrade")
        starts = (dt.datetime.now() + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
        plan = app.cli_json("broadcast", "plan", "--channel", planned["id"], "--title",
                            "Rehearsal #1", "--starts", starts)
        hook = app.cli_json("webhook", "add", "http://127.0.0.1:9/hook", "--event",
                            "broadcast.live")
        ffmpeg_publish(f"{app.rtmp_base}/{aired['stream_key']}", 4).wait(60)
        app.wait_for(lambda: any(b["status"] == "ended" for b in app.cli_json(
            "broadcast", "list", "--channel", aired["id"])), 20)
        pub = ffmpeg_publish(f"{app.rtmp_base}/{live['stream_key']}", 30)
        app.wait_for(lambda: any(b["status"] == "live" for b in app.cli_json(
            "broadcast", "list", "--channel", live["id"])), 20)
        app.kill9()
        pub.kill()
        pub.wait()
        with sqlite3.connect(data / "hearth.db") as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / "hearth.db", out / "release-wave2.sqlite")
        keep = {"aired": {"id": aired["id"], "stream_key": aired["stream_key"]},
                "planned": {"id": planned["id"], "broadcast": plan["id"]},
                "live": {"id": live["id"], "stream_key": live["stream_key"]},
                "webhook": hook["webhook"]["id"]}
        (out / "release-wave2.json").write_text(json.dumps(keep, indent=1))
    finally:
        app.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
