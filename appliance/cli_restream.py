"""``hearth channel restream add|list|remove``: simulcast a channel's broadcasts (issue 16 §1).

Kept apart from :mod:`appliance.cli` like ``webhook``: ``cli`` calls
:func:`add_restream_parser` on the ``channel`` subcommands and :func:`target_lines` to show
targets in ``hearth channel show``. The stream key of a target is a secret: it is read from
the URL's last path segment, ``--key``, or (``--key -`` or a URL with only an application)
a prompt that does not echo / one line of stdin, so it need not be in the shell history; it is
never printed back (docs/threat-model.md §restream).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any
from urllib.parse import quote

from appliance.api.schema import RestreamTarget, safe_text
from appliance.cli_parsing import Formatter, leaf
from media.rtmp.url import RtmpUrlError, parse_rtmp_url

LIST_FIELDS = ("id", "server_url", "key", "state", "bitrate_kbps", "bytes_sent",
               "frames_dropped", "connects", "failures", "last_error", "live_since",
               "created_at")
"""``hearth channel restream list --json`` keys (the contract)."""



def _leaf(sub: Any, common: argparse.ArgumentParser, name: str, func: Any, summary: str,
          description: str, examples: str) -> argparse.ArgumentParser:
    p = leaf(sub, common, name, func, summary, description, examples)
    p.add_argument("id", help="channel id")
    return p


def add_restream_parser(csub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``channel restream add|list|remove`` on the ``channel`` subparsers."""
    rs = csub.add_parser(
        "restream", help="simulcast the channel's broadcasts to YouTube, Twitch, ...",
        description="While the channel is live, Hearth publishes a copy of the stream (no "
                    "re-encoding) to each target over RTMP or RTMPS, reconnecting when a "
                    "target drops. Targets keep their keys secret: they are never shown again.",
        formatter_class=Formatter)
    rsub = rs.add_subparsers(dest="restream_action", required=True, metavar="ACTION")
    add = _leaf(rsub, common, "add", cmd_add, "add a target",
                "Add an rtmp:// or rtmps:// target. The stream key is the URL's last path "
                "segment, or --key KEY, or typed at a prompt (--key -, or a URL with only "
                "the application): the prompt keeps it out of the shell history.",
                "  hearth channel restream add 3f2a9c1b7d0e rtmps://a.rtmp.youtube.com/live2\n"
                "  echo \"$KEY\" | hearth channel restream add 3f2a9c1b7d0e "
                "rtmp://live.twitch.tv/app\n"
                "  hearth channel restream add 3f2a9c1b7d0e rtmp://relay.lan/live/KEY --json")
    add.add_argument("url", help="rtmp[s]://HOST[:PORT]/APP[/KEY]")
    add.add_argument("--key", default=None, metavar="KEY",
                     help="the stream key ('-': prompt, or read one line of stdin)")
    _leaf(rsub, common, "list", cmd_list, "list targets with their state",
          "List the channel's targets: state (idle, connecting, live, backoff, failed), "
          "bitrate, bytes sent, frames dropped for a slow target, the last error.",
          "  hearth channel restream list 3f2a9c1b7d0e\n"
          "  hearth channel restream list 3f2a9c1b7d0e --json")
    rm = _leaf(rsub, common, "remove", cmd_remove, "remove a target",
               "Remove a target; a live copy to it is stopped at once.",
               "  hearth channel restream remove 3f2a9c1b7d0e 2")
    rm.add_argument("target", help="target id (from `hearth channel restream list`)")


def _fail(message: str) -> int:
    print(f"hearth: {message}", file=sys.stderr)
    return 2


def _read_key() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Stream key (not echoed): ").strip()
    return sys.stdin.readline().strip()


def _body(url: str, key: str | None) -> dict[str, Any]:
    """The request body; raises RtmpUrlError for a URL the appliance would refuse anyway."""
    if key is None:
        parsed = parse_rtmp_url(url)
        if parsed.stream_name:
            return {"url": url}
        key = "-"
    if key == "-":
        key = _read_key()
    parse_rtmp_url(url, stream_name=key)
    return {"url": url, "key": key}


def target_lines(t: RestreamTarget) -> list[str]:
    """Human lines for one target (``restream list`` and ``channel show``)."""
    head = f"#{t.id} {t.state.value:10} {safe_text(t.server_url, 120)}/{t.key}"
    lines = [head]
    if t.state.value == "live" or t.bytes_sent:
        lines.append(f"     {t.bitrate_kbps:.0f} kbit/s, {t.bytes_sent / 1e6:.1f} MB sent, "
                     f"{t.frames_dropped} frame(s) dropped, {t.connects} connection(s)")
    if t.last_error:
        again = f" ({t.failures} failed attempts in a row)" if t.failures else ""
        lines.append(f"     last error{again}: {safe_text(t.last_error, 200)}")
    return lines


async def cmd_add(client: Any, args: argparse.Namespace) -> int:
    try:
        body = _body(args.url, args.key)
    except RtmpUrlError as exc:
        return _fail(str(exc))
    data = await client.request("POST", f"/v1/channels/{quote(args.id, safe='')}/restream",
                                body)
    target = RestreamTarget.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"Restream target {target.id} added to channel {target.channel_id}: "
          f"{safe_text(target.server_url, 120)}/{target.key}")
    print("It goes live with the channel's next (or current) broadcast; the key is not shown "
          "again.")
    return 0


def _row(t: RestreamTarget) -> dict[str, Any]:
    d = t.to_dict()
    return {k: d[k] for k in LIST_FIELDS}


async def cmd_list(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("GET", f"/v1/channels/{quote(args.id, safe='')}/restream")
    targets = [RestreamTarget.from_dict(d) for d in data]
    if args.json:
        print(json.dumps([_row(t) for t in targets], indent=2))
        return 0
    if not targets:
        print(f"No restream targets. Add one: hearth channel restream add {args.id} URL")
        return 0
    for t in targets:
        print("\n".join(target_lines(t)))
    return 0


async def cmd_remove(client: Any, args: argparse.Namespace) -> int:
    data = await client.request(
        "DELETE", f"/v1/channels/{quote(args.id, safe='')}/restream/"
                  f"{quote(args.target, safe='')}")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"Restream target {safe_text(args.target, 20)} removed.")
    return 0
