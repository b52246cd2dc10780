"""``hearth recording list|show|keep|delete``: a broadcast's recording (issue 9 §4).

Kept apart from :mod:`appliance.cli` like ``block``: ``cli`` calls
:func:`add_recording_parser` and dispatches ``recording`` to :func:`recording_command`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any
from urllib.parse import quote

from appliance.api.schema import AdminRecording, safe_text


def add_recording_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``recording list|show|keep|delete`` on the top-level subparsers."""
    rec = sub.add_parser(
        "recording", help="list, keep or delete broadcasts' recordings",
        description="Every broadcast is recorded (unless its channel opts out). Recordings are "
                    "deleted by retention (age, disk cap), oldest first, except kept ones.")
    rsub = rec.add_subparsers(dest="action", required=True, metavar="ACTION")
    rlist = rsub.add_parser("list", parents=[common], help="list recordings, newest first",
                            description="List recordings with state, length, size and keep.")
    rlist.add_argument("--json", action="store_true", help="machine-readable output")
    show = rsub.add_parser("show", parents=[common], help="show one recording",
                           description="Show one recording with its URLs and any error.")
    show.add_argument("id", help="broadcast id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    keep = rsub.add_parser("keep", parents=[common], help="exempt a recording from retention",
                           description="Keep a recording: retention never deletes it. "
                                       "--undo makes it subject to retention again.")
    keep.add_argument("id", help="broadcast id")
    keep.add_argument("--undo", action="store_true", help="no longer keep it")
    keep.add_argument("--json", action="store_true", help="machine-readable output")
    delete = rsub.add_parser("delete", parents=[common], help="delete a recording now",
                             description="Delete a recording and free its disk space "
                                         "(the broadcast itself stays listed).")
    delete.add_argument("id", help="broadcast id")
    delete.add_argument("--json", action="store_true", help="machine-readable output")


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _length(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _print_one(r: AdminRecording) -> None:
    started = dt.datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M")
    print(f"{safe_text(r.broadcast_id, 64)}  {safe_text(r.title, 60)}")
    print(f"  state     {r.state}{' (kept)' if r.kept else ''}")
    print(f"  started   {started}, length {_length(r.duration)}, {r.segments} segments, "
          f"{_size(r.bytes)}")
    if r.error:
        print(f"  error     {safe_text(r.error, 200)}")
    print(f"  playlist  {r.recording_url}")
    print(f"  download  {r.download_url}")
    if r.thumbnail_url:
        age = "" if r.thumbnail_age is None else f" ({r.thumbnail_age:.0f} s old)"
        print(f"  thumbnail {r.thumbnail_url}{age}")


async def recording_command(client: Any, args: argparse.Namespace) -> int:
    """Run ``recording list|show|keep|delete`` against the admin API."""
    if args.action == "list":
        data = await client.request("GET", "/v1/recordings")
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        recs = [AdminRecording.from_dict(d) for d in data]
        if not recs:
            print("No recordings.")
            return 0
        print(f"{'BROADCAST':14} {'STATE':9} {'LENGTH':>8} {'SIZE':>9} {'KEEP':4} TITLE")
        for r in recs:
            print(f"{safe_text(r.broadcast_id, 14):14} {r.state:9} {_length(r.duration):>8} "
                  f"{_size(r.bytes):>9} {'yes' if r.kept else '':4} {safe_text(r.title, 40)}")
            if r.error:
                print(f"{'':14} ↳ {safe_text(r.error, 100)}")
        return 0
    path = f"/v1/recordings/{quote(args.id, safe='')}"
    if args.action == "show":
        data = await client.request("GET", path)
    elif args.action == "keep":
        data = await client.request("POST", path + "/keep", {"keep": not args.undo})
    else:
        data = await client.request("DELETE", path)
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print(f"Recording of {safe_text(data['broadcast_id'], 64)} deleted.")
        return 0
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_one(AdminRecording.from_dict(data))
    return 0
