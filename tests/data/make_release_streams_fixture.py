"""Regenerate tests/data/release-streams.sqlite with the pre-channels release (commit db21fe4).

Run from a checkout of that commit: python tests/data/make_release_streams_fixture.py tests/data
"""
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.appliance import ApplianceProcess, free_port, short_tmpdir
from tests.helpers.publishers import ffmpeg_publish

d = short_tmpdir()
# a relay nobody listens on: outbox rows stay pending
dead = free_port()
app = ApplianceProcess(d, env_overrides={"HEARTH_NOSTR_RELAYS": f"ws://127.0.0.1:{dead}",
                                         "HEARTH_RTMP_GRACE_SECONDS": "1"}).start()
try:
    planned = app.create_stream("Never went live", "--summary", "created only", "--tag", "music")
    aired = app.create_stream("Friday session", "--tag", "jazz")
    gone = app.create_stream("Deleted one")
    live = app.create_stream("Live at upgrade")
    p = ffmpeg_publish(f"{app.rtmp_base}/{aired['stream_key']}", 3)
    p.wait(60)
    app.wait_for(lambda: app.cli_json("stream", "show", aired["id"])["status"] == "ended", 20)
    app.cli("chat", "send", aired["id"], "hello from the operator")
    app.cli("chat", "send", planned["id"], "see you friday")
    app.cli("stream", "delete", gone["id"])
    # one stream left 'live' by a kill -9 mid-broadcast
    p = ffmpeg_publish(f"{app.rtmp_base}/{live['stream_key']}", 30)
    app.wait_for(lambda: app.cli_json("stream", "show", live["id"])["status"] == "live", 20)
    time.sleep(2)
    app.kill9()
    p.kill(); p.wait()
    print(json.dumps({"planned": planned, "aired": aired, "deleted": gone, "live": live}, indent=1))
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    # checkpoint WAL into the main file
    import sqlite3
    c = sqlite3.connect(d / "hearth.db")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()
    shutil.copy(d / "hearth.db", out / "release-streams.sqlite")
    json.dump({k: {"id": v["id"], "stream_key": v["stream_key"], "title": v["title"]}
               for k, v in {"planned": planned, "aired": aired, "deleted": gone, "live": live}.items()},
              open(out / "release-streams.json", "w"), indent=1)
finally:
    app.stop()
    print(app.log()[-3000:])
