"""``hearth grant create|revoke-all`` and the channel password prompt (issue 14 §1).

A grant is a signed, expiring viewer link for a private channel or broadcast
(docs/threat-model.md §grants). Kept apart from :mod:`appliance.cli` like ``webhook``:
``cli`` calls :func:`add_grant_parser`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import re
import sys
from typing import Any
from urllib.parse import quote

from appliance.api.schema import GrantCreated, GrantsRevoked
from appliance.cli_parsing import Formatter

_DURATION_RE = re.compile(r"^([0-9]{1,7})([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``7d``, ``2w`` or plain seconds → seconds."""
    m = _DURATION_RE.fullmatch(text.strip().lower())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a duration such as 30m, 2h, 7d or 2w")
    return float(int(m[1]) * _UNITS[m[2]])


def read_password() -> str:
    """The new channel password: prompted twice on a terminal, else one line of stdin (so
    scripts can pipe it; it never appears in the process list or shell history)."""
    if sys.stdin.isatty():
        first = getpass.getpass("New viewer password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("hearth: the passwords differ; nothing changed")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line



def add_grant_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``grant create|revoke-all`` on the top-level subparsers."""
    grant = sub.add_parser(
        "grant", help="viewer links for private channels and broadcasts",
        description="A grant is a signed viewer link that expires. It lets its holder watch a "
                    "private channel (a channel id) or one private broadcast (a broadcast "
                    "id): page, playlists, recordings, thumbnails, WebRTC and chat.",
        formatter_class=Formatter)
    gsub = grant.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = gsub.add_parser(
        "create", parents=[common], help="make a viewer link (prints watch_url)",
        description="Make a viewer link for a channel (every broadcast of it) or one "
                    "broadcast. The link carries the grant after '#', which browsers never "
                    "send to servers or caches; the page turns it into a cookie.",
        epilog="examples:\n  hearth grant create 3f2a9c1b7d0e --expires 2h\n"
               "  hearth grant create 9d8e7f6a5b4c --expires 7d --json",
        formatter_class=Formatter)
    p.set_defaults(func=cmd_create, client=True, parser=p)
    p.add_argument("id", help="channel id or broadcast id")
    p.add_argument("--expires", type=parse_duration, default=parse_duration("24h"),
                   metavar="DURATION", help="how long it lasts: 30m, 2h, 7d, 2w (default 24h)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = gsub.add_parser(
        "revoke-all", parents=[common], help="end every grant of a channel now",
        description="Every viewer link and password session of the channel stops working at "
                    "once (viewers holding one are cut off on their next request). Links made "
                    "afterwards work.",
        epilog="examples:\n  hearth grant revoke-all 3f2a9c1b7d0e", formatter_class=Formatter)
    p.set_defaults(func=cmd_revoke_all, client=True, parser=p)
    p.add_argument("id", help="channel id")
    p.add_argument("--json", action="store_true", help="machine-readable output")


async def cmd_create(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("POST", "/v1/grants", {"id": args.id,
                                                       "expires_in": args.expires})
    grant = GrantCreated.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    until = dt.datetime.fromtimestamp(grant.expires_at).strftime("%Y-%m-%d %H:%M")
    scope = (f"broadcast {grant.broadcast_id}" if grant.broadcast_id
             else f"channel {grant.channel_id} (all its broadcasts)")
    print(f"Viewer link for {scope}, valid until {until}:")
    print(f"  {grant.watch_url}")
    print("Players outside a browser: send 'Authorization: Bearer <token>' to")
    print(f"  {grant.hls_url}")
    print(f"  token {grant.token}")
    print(f"Revoke every link of the channel: hearth grant revoke-all {grant.channel_id}")
    return 0


async def cmd_revoke_all(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("POST",
                                f"/v1/channels/{quote(args.id, safe='')}/grants/revoke")
    revoked = GrantsRevoked.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"Every earlier grant of channel {revoked.channel_id} is revoked.")
    return 0
