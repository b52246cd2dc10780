"""The CLI's --json contract for channels and broadcasts (issue 9 §2), against the real server:
the field names are the interface scripts depend on."""

from __future__ import annotations

import datetime as dt
import time

from tests.helpers.appliance import ApplianceProcess

BROADCAST_KEYS = {"id", "channel_id", "title", "status", "started_at", "ended_at", "watch_url",
                  "hls_url", "recording_url", "thumbnail_url", "viewers", "peak_viewers"}


def test_channel_and_broadcast_json_contract(appliance: ApplianceProcess) -> None:
    created = appliance.cli_json("channel", "create", "--title", "Weekly  show", "--summary",
                                 "s", "--tag", "Jazz", "--tag", "#live", "--no-record")
    assert {"id", "title", "rtmp_url", "stream_key", "channel_url", "hls_url"} <= set(created)
    cid = created["id"]
    assert created["title"] == "Weekly show" and created["whep_url"] is None  # WebRTC off
    assert created["rtmp_url"] == appliance.rtmp_base
    assert created["stream_key"].startswith(f"hk_{cid}_")
    assert created["channel_url"] == f"{appliance.base}/c/{cid}"
    assert created["hls_url"] == f"{appliance.base}/hls/{cid}/index.m3u8"

    shown = appliance.cli_json("channel", "show", cid)
    assert (shown["tags"], shown["record"], shown["live"], shown["planned"]) == (
        ["jazz", "live"], False, None, [])
    assert [c["id"] for c in appliance.cli_json("channel", "list")] == [cid]
    edited = appliance.cli_json("channel", "edit", cid, "--title", "Friday", "--record",
                                "--retention-days", "30")
    assert (edited["title"], edited["record"], edited["retention_days"]) == ("Friday", True, 30)
    rotated = appliance.cli_json("channel", "rotate-key", cid)
    assert rotated["stream_key"] != created["stream_key"] and rotated["id"] == cid

    starts = int(time.time()) + 7200
    iso = dt.datetime.fromtimestamp(starts, dt.UTC).isoformat()
    plan = appliance.cli_json("broadcast", "plan", "--channel", cid, "--title", "Album night",
                              "--starts", iso)
    assert BROADCAST_KEYS <= set(plan)
    assert (plan["status"], plan["starts"], plan["channel_id"], plan["title"]) == (
        "planned", starts, cid, "Album night")
    assert (plan["recording_url"], plan["viewers"], plan["started_at"]) == (None, 0, None)
    listed = appliance.cli_json("broadcast", "list", "--channel", cid, "--status", "planned")
    assert [b["id"] for b in listed] == [plan["id"]]
    assert appliance.cli_json("broadcast", "list", "--status", "live") == []
    assert appliance.cli_json("channel", "show", cid)["planned"][0]["id"] == plan["id"]
    assert appliance.cli_json("broadcast", "show", plan["id"])["title"] == "Album night"
    ended = appliance.cli_json("broadcast", "end", plan["id"])
    assert ended["status"] == "ended" and ended["started_at"] is None

    text = appliance.cli("broadcast", "list").stdout
    assert "None" not in text and "Album night" in text

    assert appliance.cli_json("channel", "delete", cid) == {"id": cid, "deleted": True}
    assert appliance.cli_json("channel", "list") == []
    r = appliance.cli("channel", "show", cid, check=False)
    assert r.returncode == 1 and r.stderr == f"hearth: no channel '{cid}'\n"
    r = appliance.cli("broadcast", "show", "abcdef123456", check=False)
    assert r.returncode == 1 and r.stderr == "hearth: no broadcast 'abcdef123456'\n"
    r = appliance.cli("channel", "create", "--title", "   ", check=False)
    assert r.returncode == 1 and r.stderr == "hearth: title: must not be empty\n"
