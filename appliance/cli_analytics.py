"""``hearth analytics broadcast|channel``: audience figures (issue 14 §3, docs/analytics.md).

Kept apart from :mod:`appliance.cli` like ``webhook``: ``cli`` calls
:func:`add_analytics_parser`; each action sets its own ``func``. ``--json`` prints the admin
API's answer as is (the DTOs of :mod:`appliance.api.schema`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from typing import Any
from urllib.parse import quote

from appliance.api.schema import (
    AnalyticsLink,
    AnalyticsSplit,
    BroadcastAnalytics,
    ChannelAnalytics,
    DeviceClass,
    PlayerKind,
    safe_text,
)
from appliance.cli_access import parse_duration
from appliance.cli_parsing import leaf

SPARK = " ▁▂▃▄▅▆▇█"


def _days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number of days") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError("from 1 to 3650 days")
    return days


def add_analytics_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``analytics broadcast|channel`` on the top-level subparsers."""
    an = sub.add_parser(
        "analytics", help="audience figures per broadcast and channel",
        description="Concurrent viewers per minute, peak, unique viewers, watch time, player "
                    "kinds, devices and chat (docs/analytics.md). No address or User-Agent "
                    "is stored: viewers are counted by a hash that changes every day.")
    asub = an.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = leaf(asub, common, "broadcast", cmd_broadcast, "one broadcast's audience",
             "A broadcast's audience: timeline of concurrent viewers, peak, unique viewers, "
             "watch time, player kind and device split, chat; recording playback apart.",
             "  hearth analytics broadcast 9d8e7f6a5b4c\n"
             "  hearth analytics broadcast 9d8e7f6a5b4c --json")
    b.add_argument("id", help="broadcast id (from `hearth broadcast list`)")
    c = leaf(asub, common, "channel", cmd_channel, "a channel's audience over days",
             "The broadcasts of a channel that started in the last N days, rolled up, "
             "per day and per broadcast.",
             "  hearth analytics channel 3f2a9c1b7d0e --days 7\n"
             "  hearth analytics channel 3f2a9c1b7d0e --json")
    c.add_argument("id", help="channel id (from `hearth channel list`)")
    c.add_argument("--days", type=_days, default=30, metavar="N",
                   help="last N days (default 30)")
    link = leaf(asub, common, "link", cmd_link, "a link to the channel owner's analytics page",
                "Make a link to the channel's analytics page for its owner (no admin access "
                "needed): signed, expiring, ended early by `hearth grant revoke-all CHANNEL`.",
                "  hearth analytics link 3f2a9c1b7d0e --expires 30d\n"
                "  hearth analytics link 3f2a9c1b7d0e --json")
    link.add_argument("id", help="channel id (from `hearth channel list`)")
    link.add_argument("--expires", type=parse_duration, default=parse_duration("7d"),
                      metavar="DURATION", help="how long the link works: 30m, 2h, 7d, 2w "
                                               "(default 7d)")


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``4 min 05 s``, ``12 s``."""
    s = round(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def sparkline(values: list[int], width: int = 60) -> str:
    """Values as block characters, averaged down to ``width`` columns."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [max(values[int(i * step):max(int((i + 1) * step), int(i * step) + 1)])
                  for i in range(width)]
    top = max(values) or 1
    return "".join(SPARK[round(v / top * (len(SPARK) - 1))] for v in values)


def split_lines(split: list[AnalyticsSplit]) -> list[str]:
    """Per player kind and per device: sessions, viewers, watch time."""
    lines: list[str] = []
    for title, dim, values in (("player", "kind", list(PlayerKind)),
                               ("device", "device", list(DeviceClass))):
        parts = []
        for v in values:
            rows = [s for s in split if getattr(s, dim) == v]
            if rows:
                n = sum(r.sessions for r in rows)
                w = sum(r.watch_seconds for r in rows)
                parts.append(f"{v.value} {n} ({duration(w)})")
        lines.append(f"  {title:7} {', '.join(parts) or '-'}")
    return lines


async def cmd_broadcast(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("GET", f"/v1/analytics/broadcasts/{quote(args.id, safe='')}")
    a = BroadcastAnalytics.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{safe_text(a.title)}  [{a.status}]  broadcast {a.broadcast_id} of channel "
          f"{a.channel_id}")
    print(f"  started {_when(a.started_at)}  ended {_when(a.ended_at)}")
    if a.status == "live":
        print(f"  now     {a.current_viewers} watching")
    print(f"  peak    {a.peak} at {_when(a.peak_at)}; {a.unique_viewers} unique viewers")
    print(f"  watched {duration(a.watch_seconds)} in {a.sessions} sessions "
          f"(average {duration(a.average_watch_seconds)})")
    print(f"  chat    {a.chat_messages} messages from {a.chatters} chatters")
    if a.vod_sessions:
        print(f"  replay  {a.vod_sessions} sessions by {a.vod_viewers} viewers, "
              f"{duration(a.vod_watch_seconds)}")
    for line in split_lines(a.split):
        print(line)
    if a.timeline:
        print(f"  viewers per minute (max {max(m.viewers for m in a.timeline)}):")
        print(f"  {sparkline([m.viewers for m in a.timeline])}")
    return 0


async def cmd_link(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("POST", f"/v1/analytics/channels/{quote(args.id, safe='')}/link",
                                {"expires_in": args.expires})
    link = AnalyticsLink.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"Owner analytics link for channel {link.channel_id} (until {_when(link.expires_at)}):")
    print(f"  {link.url}")
    print("Anyone with it sees the channel's audience figures; "
          f"`hearth grant revoke-all {link.channel_id}` ends it early.")
    return 0


async def cmd_channel(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("GET", f"/v1/analytics/channels/{quote(args.id, safe='')}",
                                params={"days": str(args.days)})
    a = ChannelAnalytics.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{safe_text(a.title)}  channel {a.channel_id}, last {a.days} days: "
          f"{a.broadcasts} broadcasts")
    print(f"  peak    {a.peak} at {_when(a.peak_at)}; {a.unique_viewers} viewers "
          "(summed over broadcasts)")
    print(f"  watched {duration(a.watch_seconds)} in {a.sessions} sessions "
          f"(average {duration(a.average_watch_seconds)})")
    print(f"  chat    {a.chat_messages} messages")
    if a.vod_sessions:
        print(f"  replay  {a.vod_sessions} sessions, {duration(a.vod_watch_seconds)}")
    for line in split_lines(a.split):
        print(line)
    if a.per_broadcast:
        print(f"  {'BROADCAST':14} {'STARTED':16} {'PEAK':>5} {'UNIQUE':>6} {'WATCHED':>12} "
              "TITLE")
        for x in a.per_broadcast:
            print(f"  {x.broadcast_id:14} {_when(x.started_at):16} {x.peak:>5} "
                  f"{x.unique_viewers:>6} {duration(x.watch_seconds):>12} {safe_text(x.title)}")
    return 0
