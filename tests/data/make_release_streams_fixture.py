"""Regenerate tests/data/release-streams.sqlite with the pre-channels release (commit db21fe4).

Run from a checkout of that commit: ``python tests/data/make_release_streams_fixture.py
tests/data``. It drives the real ``hearth serve`` of that release: four streams (one never
published, one aired and ended, one deleted, one left ``live`` by a ``kill -9``), chat on two of
them, and an outbox of events for a relay nobody listens on.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers.appliance import ApplianceProcess, free_port, short_tmpdir
from tests.helpers.publishers import ffmpeg_publish


def main(out: Path) -> None:
    data = short_tmpdir()
    app = ApplianceProcess(data, env_overrides={
        "HEARTH_NOSTR_RELAYS": f"ws://127.0.0.1:{free_port()}",
        "HEARTH_RTMP_GRACE_SECONDS": "1"}).start()
    try:
        streams = {
            "planned": app.create_stream("Never went live", "--summary", "created only",
                                         "--tag", "music"),
            "aired": app.create_stream("Friday session", "--tag", "jazz"),
            "deleted": app.create_stream("Deleted one"),
            "live": app.create_stream("Live at upgrade"),
        }
        aired, live = streams["aired"], streams["live"]
        ffmpeg_publish(f"{app.rtmp_base}/{aired['stream_key']}", 3).wait(60)
        app.wait_for(lambda: app.cli_json("stream", "show", aired["id"])["status"] == "ended",
                     20)
        app.cli("chat", "send", aired["id"], "hello from the operator")
        app.cli("chat", "send", streams["planned"]["id"], "see you friday")
        app.cli("stream", "delete", streams["deleted"]["id"])
        pub = ffmpeg_publish(f"{app.rtmp_base}/{live['stream_key']}", 30)
        app.wait_for(lambda: app.cli_json("stream", "show", live["id"])["status"] == "live", 20)
        time.sleep(2)
        app.kill9()
        pub.kill()
        pub.wait()
        with sqlite3.connect(data / "hearth.db") as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / "hearth.db", out / "release-streams.sqlite")
        keep = {name: {"id": s["id"], "stream_key": s["stream_key"], "title": s["title"]}
                for name, s in streams.items()}
        (out / "release-streams.json").write_text(json.dumps(keep, indent=1))
    finally:
        app.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
