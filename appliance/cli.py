"""The ``hearth`` command line: ``serve`` runs the appliance; the rest talk to it.

Every client subcommand reaches the running appliance through the admin API on its Unix
socket, found from ``--admin-socket``, else ``HEARTH_ADMIN_SOCKET``, else the data dir
(``--data-dir`` / ``HEARTH_DATA_DIR`` / platformdirs), else the system service's
``/run/hearth/admin.sock``.

Adding a command: write ``async def cmd_x(client, args) -> int`` (or a plain ``def`` for
commands that need no appliance, like ``serve``), add its parser in one ``_add_*`` function and
``set_defaults(func=cmd_x)``. :func:`main` dispatches; nothing else needs to change.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from appliance import cli_access, cli_nostr
from appliance.api.admin_client import ApplianceError, UnixSocketAdminClient
from appliance.api.schema import (
    AdminBroadcast,
    AdminChannel,
    AdminStream,
    ChannelCredentials,
    ChatMessage,
    Status,
    safe_text,
)
from appliance.cli_analytics import add_analytics_parser, duration
from appliance.cli_blocks import add_block_parser, block_command
from appliance.cli_parsing import Formatter, command, common_options, json_flag
from appliance.cli_recordings import add_recording_parser, recording_command
from appliance.cli_restream import add_restream_parser, target_lines
from appliance.cli_webhooks import add_webhook_parser
from appliance.config import (
    ConfigError,
    default_data_dir,
    default_socket,
    describe,
    load_config,
    load_config_with_sources,
    parse_address,
    unknown_variables,
)
from media.ladder import PRESETS, LadderError, parse_ladder

SYSTEM_SOCKET = Path("/run/hearth/admin.sock")

ClientCommand = Callable[[UnixSocketAdminClient, argparse.Namespace], Awaitable[int]]


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hearth")
    except PackageNotFoundError:
        return "dev"


# ---- argument types ------------------------------------------------------------------------


def _hostport(value: str) -> tuple[str, int]:
    try:
        return parse_address(value)  # a bare port means 0.0.0.0:PORT
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(value: str) -> float:
    """ISO 8601 date and time → Unix time; a time without an offset is local time."""
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date and time such as 2026-12-04T20:00+01:00, got {value!r}"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


def _days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 3650:
        raise argparse.ArgumentTypeError(f"expected a number of days from 1 to 3650, got {value!r}")
    return int(value)


def _ladder(value: str) -> list[str]:
    """``--ladder 720p,480p,360p`` or ``--ladder off`` (checked here and by the appliance)."""
    try:
        return list(parse_ladder(value))
    except LadderError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("ladder: ")) from None


# ---- output ----------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _print_credentials(c: ChannelCredentials, verb: str) -> None:
    print(f"{verb}: {safe_text(c.title)} (id {c.id})")
    print(f"  Server:      {c.rtmp_url}")
    print(f"  Stream key:  {c.stream_key}")
    print("               (shown once: paste it into OBS now; if lost, rotate it)")
    print(f"  Channel:     {c.channel_url}")
    print(f"  HLS:         {c.hls_url}")
    if c.whep_url:
        print(f"  WebRTC:      {c.whep_url}")
    if c.srt_url:
        print(f"  SRT:         {c.srt_url}")
        print("               (or publish over SRT: that URL as the server, key field empty)")
    if c.whip_url:
        print(f"  WHIP:        {c.whip_url}")
        print("               (or OBS 30+ Service \"WHIP\": that URL, the key as Bearer Token;")
        print(f"                or go live from a browser: {c.channel_url}/golive)")
    print()
    print(c.obs_advice)


def _viewers(b: AdminBroadcast) -> str:
    if b.status == "live":
        return f"{b.viewers} watching, {b.peak_viewers} peak"
    if b.status == "ended":
        return f"{b.peak_viewers} peak viewers"
    return f"starts {_when(b.starts)}"


def _print_broadcast(b: AdminBroadcast) -> None:
    print(f"{safe_text(b.title)}  [{b.status}]  broadcast {b.id} of channel {b.channel_id}")
    if b.status == "planned":
        print(f"  planned for {_when(b.starts)}")
    else:
        print(f"  started {_when(b.started_at)}  ended {_when(b.ended_at)}"
              + (f" ({safe_text(b.end_reason)})" if b.end_reason else ""))
        print(f"  viewers {b.viewers} now, {b.peak_viewers} peak, {b.total_viewers} total; "
              f"reconnects {b.reconnects}")
    print(f"  visibility {b.visibility}"
          + ("" if b.own_visibility else " (follows its channel)"))
    print(f"  watch {b.watch_url}")
    print(f"  hls   {b.hls_url}")
    if b.recording_url:
        print(f"  recording {b.recording_url}")
    if b.ingest:
        i = b.ingest
        res = f"{i.width}x{i.height}" if i.width else "?"
        via = f" ({i.protocol.upper()})" if i.protocol else ""
        print(f"  ingest{via} from {i.remote}: {i.verdict}; {i.video_codec} {res} {i.fps} fps, "
              f"{i.bitrate_kbps} kbit/s, keyframe every {i.keyframe_interval} s, "
              f"B-frames {'yes' if i.bframes else 'no'}; audio {i.audio_codec} "
              f"{i.sample_rate} Hz; frames dropped for slow readers (viewers, restream "
              f"targets) {i.frames_discarded}")
        for reason in i.verdict_reasons:
            print(f"  WARNING {safe_text(reason)}")
        for r in i.ladder:
            figures = (f", {r.speed:.1f}x real time, {r.lag:.2f} s behind"
                       if r.speed is not None and r.lag is not None else "")
            print(f"  ladder {r.name} {r.width}x{r.height} {r.state} ({r.encoder}{figures}; "
                  f"frames dropped {r.frames_dropped})")
        if i.ladder_notice:
            print(f"  NOTE {safe_text(i.ladder_notice)}")
    elif b.status == "live" and b.grace_until:
        print(f"  publisher disconnected; the broadcast ends at {_when(b.grace_until)} "
              "unless it reconnects")


def _print_channel(c: AdminChannel) -> None:
    print(f"{safe_text(c.title)}  channel {c.id}")
    if c.summary:
        print(f"  {safe_text(c.summary)}")
    if c.tags:
        print("  tags: " + " ".join(f"#{t}" for t in c.tags))
    retention = f"{c.retention_days} days" if c.retention_days else "until the disk cap"
    print(f"  recording {'on' if c.record else 'off'} (kept {retention}); "
          f"created {_when(c.created_at)}; {c.broadcasts_total} broadcast(s)")
    print(f"  visibility {c.visibility}" + (" (password page on)" if c.has_password else ""))
    print(f"  ladder  {','.join(c.ladder) + ' (plus the source)' if c.ladder else 'off'}")
    print(f"  server  {c.rtmp_url}  (key: hearth channel rotate-key {c.id})")
    print(f"  channel {c.channel_url}")
    print(f"  hls     {c.hls_url}")
    if c.live:
        print(f"  LIVE: {safe_text(c.live.title)} (broadcast {c.live.id}), "
              f"{_viewers(c.live)}")
    for p in c.planned:
        print(f"  planned: {safe_text(p.title)} (broadcast {p.id}) at {_when(p.starts)}")
    if c.restream:
        print("  restream:")
        for t in c.restream:
            print("\n".join(f"    {line}" for line in target_lines(t)))


def _print_stream(s: AdminStream) -> None:
    print(f"{safe_text(s.title)}  [{s.status}]  id {s.id}")
    if s.summary:
        print(f"  {safe_text(s.summary)}")
    print(f"  created {_when(s.created_at)}  started {_when(s.started_at)}  "
          f"ended {_when(s.ended_at)}")
    print(f"  viewers {s.viewers} now, {s.peak_viewers} peak, {s.total_viewers} total")
    print(f"  watch {s.watch_url}")
    print(f"  hls   {s.hls_url}")


# ---- commands ----------------------------------------------------------------------------------


def _channel_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("title", "summary", "image"):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = value
    if getattr(args, "tag", None) is not None:
        body["tags"] = args.tag
    if getattr(args, "record", None) is not None:
        body["record"] = args.record
    if getattr(args, "retention_days", None) is not None:
        body["retention_days"] = args.retention_days
    if getattr(args, "visibility", None) is not None:
        body["visibility"] = args.visibility
    password = getattr(args, "password", None)
    if password is False:
        body["password"] = None
    elif password:
        body["password"] = cli_access.read_password()
    if getattr(args, "ladder", None) is not None:
        body["ladder"] = args.ladder
    return body


async def cmd_status(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("GET", "/v1/status")
    if args.json:
        _json(data)
        return 0
    st = Status.from_dict(data)
    print(f"Hearth {st.version}: up {int(st.uptime)} s")
    print(f"  public URL  {st.public_url}")
    print(f"  RTMP URL    {st.rtmp_url}")
    print(f"  data dir    {st.data_dir}")
    print(f"  channels    {st.streams_total}; broadcasts {st.streams_live} live, "
          f"{st.broadcasts_planned} planned; {st.publishers} publishing, {st.viewers} viewers")
    print(f"  RTMP        {st.rtmp_connections} connections, "
          f"{st.auth_failures} refused keys, {st.frames_discarded} frames dropped for slow "
          "readers, "
          f"{st.rtmp_refused} refused before publishing")
    if st.srt_url:
        print(f"  SRT         {st.srt_url}KEY: {st.srt_connections} connections, "
              f"{st.srt_rejected} refused in the handshake")
    if st.ladder_encoder:
        print(f"  ladder      {st.ladder_encoder}")
    if st.blocked_addresses:
        print(f"  blocked     {st.blocked_addresses} address(es) for wrong keys "
              "(hearth block list)")
    for w in st.ingest_warnings:
        print(f"  WARNING ingest {safe_text(w)}")
    for e in st.recent_errors:
        print(f"  {_when(e.at)} {e.level.upper():7} {safe_text(e.kind, 40)}: "
              f"{safe_text(e.message)}")
    return 0


async def cmd_channel_create(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("POST", "/v1/channels", _channel_body(args))
    if args.json:
        _json(data)
    else:
        _print_credentials(ChannelCredentials.from_dict(data), "Channel created")
    return 0


async def cmd_channel_list(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("GET", "/v1/channels")
    if args.json:
        _json(data)
        return 0
    channels = [AdminChannel.from_dict(d) for d in data]
    if not channels:
        print('No channels yet. Create one: hearth channel create --title "…"')
        return 0
    print(f"{'ID':14} {'NOW':24} {'NEXT PLANNED':17} TITLE")
    for c in channels:
        now = f"live, {c.live.viewers} watching" if c.live else "off air"
        nxt = _when(c.planned[0].starts) if c.planned else "-"
        print(f"{c.id:14} {now:24} {nxt:17} {safe_text(c.title)}")
    return 0


async def cmd_channel_show(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("GET", f"/v1/channels/{args.id}")
    if args.json:
        _json(data)
    else:
        _print_channel(AdminChannel.from_dict(data))
    return 0


async def cmd_channel_edit(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    body = _channel_body(args)
    if not body:
        print("hearth channel edit: nothing to change (give --title, --summary, --tag, "
              "--image, --record/--no-record, --retention-days, --visibility, "
              "--password/--no-password or --ladder)", file=sys.stderr)
        return 2
    data = await client.request("PATCH", f"/v1/channels/{args.id}", body)
    if args.json:
        _json(data)
    else:
        _print_channel(AdminChannel.from_dict(data))
    return 0


async def cmd_channel_rotate_key(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("POST", f"/v1/channels/{args.id}/rotate-key")
    if args.json:
        _json(data)
    else:
        _print_credentials(ChannelCredentials.from_dict(data), "New key for")
    return 0


async def cmd_channel_delete(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("DELETE", f"/v1/channels/{args.id}")
    if args.json:
        _json(data)
    else:
        print(f"Channel {args.id} deleted.")
    return 0


async def cmd_broadcast_list(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("channel", args.channel), ("status", args.status)) if v}
    data = await client.request("GET", "/v1/broadcasts", params=params)
    if args.json:
        _json(data)
        return 0
    broadcasts = [AdminBroadcast.from_dict(d) for d in data]
    if not broadcasts:
        print("No broadcasts yet. Publish with a channel's key, or plan one: "
              "hearth broadcast plan --channel ID --title \"…\" --starts 2026-12-04T20:00")
        return 0
    print(f"{'ID':14} {'CHANNEL':14} {'STATUS':8} {'STARTED':17} {'VIEWERS':26} TITLE")
    for b in broadcasts:
        print(f"{b.id:14} {b.channel_id:14} {b.status:8} {_when(b.started_at):17} "
              f"{_viewers(b):26} {safe_text(b.title)}")
    return 0


async def cmd_broadcast_show(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("GET", f"/v1/broadcasts/{args.id}")
    if args.json:
        _json(data)
    else:
        b = AdminBroadcast.from_dict(data)
        _print_broadcast(b)
        await _print_audience(client, b.id)
        await _print_naddr(client, args.id)
    return 0


async def _print_audience(client: UnixSocketAdminClient, broadcast_id: str) -> None:
    """The analytics summary line (nothing when analytics are off or the appliance is older)."""
    try:
        a = await client.broadcast_analytics(broadcast_id)
    except ApplianceError:
        return
    print(f"  audience peak {a.peak}, {a.unique_viewers} unique, watched "
          f"{duration(a.watch_seconds)} (average {duration(a.average_watch_seconds)}), "
          f"chat {a.chat_messages}; `hearth analytics broadcast {a.broadcast_id}`")


async def _print_naddr(client: UnixSocketAdminClient, ident: str) -> None:
    link = await cli_nostr.naddr_line(client, ident)
    if link:
        print(f"  nostr {link}")


async def cmd_broadcast_plan(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"channel_id": args.channel, "title": args.title,
                            "starts": args.starts}
    if args.visibility:
        body["visibility"] = args.visibility
    data = await client.request("POST", "/v1/broadcasts", body)
    if args.json:
        _json(data)
    else:
        b = AdminBroadcast.from_dict(data)
        print(f"Planned: {safe_text(b.title)} (broadcast {b.id}) at {_when(b.starts)}; "
              "announced on Nostr as planned. Publishing with the channel's key near that time "
              "starts it.")
    return 0


async def cmd_broadcast_edit(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    visibility = None if args.visibility == "channel" else args.visibility
    data = await client.request("PATCH", f"/v1/broadcasts/{args.id}",
                                {"visibility": visibility})
    if args.json:
        _json(data)
    else:
        _print_broadcast(AdminBroadcast.from_dict(data))
    return 0


async def cmd_broadcast_end(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("POST", f"/v1/broadcasts/{args.id}/end")
    if args.json:
        _json(data)
    else:
        print(f"Broadcast {args.id} is {data['status']}.")
    return 0


async def cmd_stream_create(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("POST", "/v1/streams", _channel_body(args))
    if args.json:
        _json(data)
    else:
        _print_credentials(ChannelCredentials.from_dict(data), "Stream created")
    return 0


async def cmd_stream_list(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("GET", "/v1/streams")
    if args.json:
        _json(data)
        return 0
    streams = [AdminStream.from_dict(d) for d in data]
    if not streams:
        print('No streams yet. Create one: hearth channel create --title "…"')
        return 0
    print(f"{'ID':14} {'STATUS':8} {'VIEWERS':>7}  TITLE")
    for s in streams:
        print(f"{s.id:14} {s.status:8} {s.viewers:>7}  {safe_text(s.title)}")
    return 0


async def cmd_stream_show(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("GET", f"/v1/streams/{args.id}")
    if args.json:
        _json(data)
    else:
        _print_stream(AdminStream.from_dict(data))
        await _print_naddr(client, args.id)
    return 0


async def cmd_stream_end(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("POST", f"/v1/streams/{args.id}/end")
    print(f"Stream {args.id} is {data['status']}.")
    return 0


async def cmd_stream_delete(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    await client.request("DELETE", f"/v1/streams/{args.id}")
    print(f"Stream {args.id} deleted.")
    return 0


async def cmd_chat_list(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("GET", f"/v1/broadcasts/{args.id}/chat",
                                params={"limit": str(args.limit)})
    if args.json:
        _json(data)
        return 0
    if not data:
        print("No chat messages yet.")
    for m in (ChatMessage.from_dict(d) for d in data):
        who = safe_text(m.display_name or m.pubkey[:12], 64)
        flags = "".join(f" [{f}]" for f, on in (("hidden", m.hidden), ("muted", m.muted),
                                                 ("pinned", m.pinned)) if on)
        zap = f" ⚡{m.zap_msats // 1000} sats" if m.zap_msats else ""
        print(f"{_when(m.created_at)} {who}{zap}: {safe_text(m.content)}{flags}  "
              f"({safe_text(m.id, 12)})")
    return 0


async def cmd_chat_send(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    data = await client.request("POST", f"/v1/broadcasts/{args.id}/chat",
                                {"content": args.text})
    if args.json:
        _json(data)
    else:
        print(f"Sent ({data['id']}).")
    return 0


def _overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The configuration set by flags, and which flag set each key."""
    overrides: dict[str, Any] = {}
    flags: dict[str, str] = {}

    def put(key: str, value: Any, flag: str) -> None:
        section, _, name = key.rpartition(".")
        (overrides.setdefault(section, {}) if section else overrides)[name] = value
        flags[key] = flag

    if args.data_dir:
        put("data_dir", str(args.data_dir), "--data-dir")
    if args.log_level:
        put("log_level", args.log_level, "--log-level")
    if args.http:
        put("http.host", args.http[0], "--http")
        put("http.port", args.http[1], "--http")
    if args.public_url:
        put("http.public_url", args.public_url, "--public-url")
    if args.rtmp:
        put("rtmp.host", args.rtmp[0], "--rtmp")
        put("rtmp.port", args.rtmp[1], "--rtmp")
    if getattr(args, "srt", None):
        put("srt.enabled", True, "--srt")
        put("srt.host", args.srt[0], "--srt")
        put("srt.port", args.srt[1], "--srt")
    if args.admin_socket:
        put("admin.socket_path", str(args.admin_socket), "--admin-socket")
    if args.no_relays:
        put("nostr.relays", [], "--no-relays")
    elif args.relay:
        put("nostr.relays", args.relay, "--relay")
    return overrides, flags


def _warn(message: str) -> None:
    print(f"hearth: warning: {message}", file=sys.stderr)


def cmd_config_show(args: argparse.Namespace) -> int:
    overrides, flags = _overrides(args)
    for message in unknown_variables(os.environ):
        _warn(message)
    try:
        config, sources = load_config_with_sources(args.config, overrides=overrides,
                                                    flag_names=flags)
    except ConfigError as exc:
        print(f"hearth: configuration error: {exc}", file=sys.stderr)
        return 2
    rows = describe(config, sources)
    if args.json:
        print(json.dumps([{"key": k, "value": v, "source": src.origin, "from": src.detail}
                          for k, v, src in rows], indent=2))
        return 0
    width = max(len(k) for k, _, _ in rows)
    vwidth = min(40, max(len(v) for _, v, _ in rows))
    for key, value, src in rows:
        print(f"{key:{width}}  {value:{vwidth}}  {src}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    overrides, flags = _overrides(args)
    try:
        config = load_config(args.config, overrides=overrides, flag_names=flags, warn=_warn)
    except ConfigError as exc:
        print(f"hearth: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from appliance.event_loop import loop_factory
    from appliance.lifecycle import serve

    try:
        with asyncio.Runner(loop_factory=loop_factory(config.event_loop)) as runner:
            runner.run(serve(config))
    except ConfigError as exc:  # found only at start-up (e.g. an unreadable key file)
        print(f"hearth: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hearth: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    # exec, not import: the appliance never loads the TUI
    os.execv(sys.executable, [sys.executable, "-m", "tui",
                              "--admin-socket", str(_socket_path(args))])
    return 0  # not reached


# ---- the parser ------------------------------------------------------------------------------


def _channel_fields(p: argparse.ArgumentParser, *, create: bool) -> None:
    p.add_argument("--title", required=create, default=None)
    p.add_argument("--summary", default=None)
    p.add_argument("--tag", action="append", default=None, help="tag (repeatable)")
    p.add_argument("--image", default=None, help="image URL (https)")
    rec = p.add_mutually_exclusive_group()
    if not create:
        rec.add_argument("--record", dest="record", action="store_true", default=None,
                         help="record its broadcasts")
    rec.add_argument("--no-record", dest="record", action="store_false",
                     default=None,
                     help="do not record its broadcasts (recording is on by default)")
    p.add_argument("--retention-days", type=_days, default=None, metavar="DAYS",
                   help="delete its recordings after DAYS days")
    p.add_argument("--visibility", choices=VISIBILITIES, default=None,
                   help="public (listed, on Nostr), unlisted (by link only) or private "
                        "(needs a grant: hearth grant create)")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password", dest="password", action="store_true", default=None,
                    help="set a viewer password (prompted, or one line on stdin)")
    if not create:
        pw.add_argument("--no-password", dest="password", action="store_false",
                        help="remove the viewer password")
    p.add_argument("--ladder", type=_ladder, default=None, metavar="PRESETS",
                   help="quality ladder: comma-separated presets (" + ",".join(PRESETS)
                   + ") encoded next to the source, or off (remux only, the default)")


VISIBILITIES = ("public", "unlisted", "private")


def _add_channel(sub: Any, common: argparse.ArgumentParser) -> None:
    channel = sub.add_parser(
        "channel", help="channels: one per show, with a stream key that lasts",
        description="A channel is set up once (title, key); every publish with its key is a "
                    "new broadcast of it.", formatter_class=Formatter)
    csub = channel.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(csub, "create", cmd_channel_create, "create a channel (shows its key once)",
                 "Create a channel; prints the RTMP server URL and stream key once.",
                 "  hearth channel create --title \"Friday session\" --tag music\n"
                 "  hearth channel create --title Talks --no-record --json", parents=[common])
    _channel_fields(p, create=True)
    json_flag(p)
    p = command(csub, "list", cmd_channel_list, "list channels",
                 "List channels with what is live and what is planned.",
                 "  hearth channel list\n  hearth channel list --json", parents=[common])
    json_flag(p)
    p = command(csub, "show", cmd_channel_show, "show one channel",
                 "Show a channel, its live broadcast and its planned ones.",
                 "  hearth channel show 3f2a9c1b7d0e", parents=[common])
    p.add_argument("id")
    json_flag(p)
    p = command(csub, "edit", cmd_channel_edit, "change a channel's description or policy",
                 "Change a channel's title, summary, tags, image, recording policy or quality "
                 "ladder. A live broadcast's Nostr event follows the new description; a new "
                 "ladder applies from the channel's next broadcast.",
                 "  hearth channel edit 3f2a9c1b7d0e --title \"Friday jazz\"\n"
                 "  hearth channel edit 3f2a9c1b7d0e --no-record\n"
                 "  hearth channel edit 3f2a9c1b7d0e --visibility private --password\n"
                 "  hearth channel edit 3f2a9c1b7d0e --ladder 720p,480p,360p\n"
                 "  hearth channel edit 3f2a9c1b7d0e --ladder off", parents=[common])
    p.add_argument("id")
    _channel_fields(p, create=False)
    json_flag(p)
    p = command(csub, "rotate-key", cmd_channel_rotate_key, "issue a new stream key",
                 "Issue a new key; the old one stops working at once (a live publisher using "
                 "it is disconnected).", "  hearth channel rotate-key 3f2a9c1b7d0e",
                 parents=[common])
    p.add_argument("id")
    json_flag(p)
    p = command(csub, "delete", cmd_channel_delete, "delete a channel",
                 "End its live broadcast, remove it and its broadcasts from every listing and "
                 "ask Nostr relays to delete their events (NIP-09).",
                 "  hearth channel delete 3f2a9c1b7d0e", parents=[common])
    p.add_argument("id")
    json_flag(p)
    add_restream_parser(csub, common)


def _add_broadcast(sub: Any, common: argparse.ArgumentParser) -> None:
    broadcast = sub.add_parser(
        "broadcast", help="broadcasts: each live session of a channel, or a planned one",
        description="Each publish with a channel's key is a broadcast with its own Nostr "
                    "event; plan one ahead to announce it.", formatter_class=Formatter)
    bsub = broadcast.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(bsub, "list", cmd_broadcast_list, "list broadcasts",
                 "List broadcasts, newest first.",
                 "  hearth broadcast list --status live\n"
                 "  hearth broadcast list --channel 3f2a9c1b7d0e --json", parents=[common])
    p.add_argument("--channel", metavar="ID", help="only this channel's")
    p.add_argument("--status", choices=["planned", "live", "ended"])
    json_flag(p)
    p = command(bsub, "show", cmd_broadcast_show, "show one broadcast",
                 "Show a broadcast with its ingest health while live.",
                 "  hearth broadcast show 9d8e7f6a5b4c", parents=[common])
    p.add_argument("id")
    json_flag(p)
    p = command(bsub, "plan", cmd_broadcast_plan, "announce a broadcast ahead",
                 "Plan a broadcast: it is announced on Nostr (status planned, with its start) "
                 "and the channel's first publish near that time becomes it.",
                 "  hearth broadcast plan --channel 3f2a9c1b7d0e --title \"Album night\" "
                 "--starts 2026-12-04T20:00+01:00", parents=[common])
    p.add_argument("--channel", required=True, metavar="ID")
    p.add_argument("--title", required=True)
    p.add_argument("--starts", required=True, type=_instant, metavar="ISO8601",
                   help="start time, e.g. 2026-12-04T20:00+01:00 (no offset: local time)")
    p.add_argument("--visibility", choices=VISIBILITIES, default=None,
                   help="its own visibility (default: its channel's)")
    json_flag(p)
    p = command(bsub, "edit", cmd_broadcast_edit, "change one broadcast's visibility",
                 "Give one broadcast its own visibility (public, unlisted, private), or "
                 "--visibility channel to make it follow its channel again. Takes effect at "
                 "once: viewers without a grant are refused on their next request, and a "
                 "broadcast that stops being public is deleted from Nostr relays (NIP-09).",
                 "  hearth broadcast edit 9d8e7f6a5b4c --visibility private", parents=[common])
    p.add_argument("id")
    p.add_argument("--visibility", required=True, choices=[*VISIBILITIES, "channel"])
    json_flag(p)
    p = command(bsub, "end", cmd_broadcast_end, "end a broadcast now (or cancel a plan)",
                 "End a live broadcast now (its publisher is disconnected; the next publish "
                 "starts a new broadcast) or cancel a planned one.",
                 "  hearth broadcast end 9d8e7f6a5b4c", parents=[common])
    p.add_argument("id")
    json_flag(p)


def _add_stream_aliases(sub: Any, common: argparse.ArgumentParser) -> None:
    stream = sub.add_parser(
        "stream", help="the pre-channels commands (a stream is a channel)",
        description="Kept for scripts written before channels: a stream id is a channel id. "
                    "Use `hearth channel` and `hearth broadcast`.", formatter_class=Formatter)
    ssub = stream.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(ssub, "create", cmd_stream_create, "a channel with a first planned broadcast",
                 "Create a channel and a planned broadcast with the same id, taken by its first "
                 "publish (shows the key once).",
                 "  hearth stream create --title \"Friday session\"", parents=[common])
    _channel_fields(p, create=True)
    json_flag(p)
    p = command(ssub, "list", cmd_stream_list, "channels as streams",
                 "List channels with their live or latest broadcast's status.",
                 "  hearth stream list --json", parents=[common])
    json_flag(p)
    p = command(ssub, "show", cmd_stream_show, "one channel as a stream",
                 "Show a channel with its live or latest broadcast's status.",
                 "  hearth stream show 3f2a9c1b7d0e", parents=[common])
    p.add_argument("id")
    json_flag(p)
    p = command(ssub, "end", cmd_stream_end, "end the channel's live broadcast",
                 "End the channel's live broadcast now; the channel and its key stay.",
                 "  hearth stream end 3f2a9c1b7d0e", parents=[common])
    p.add_argument("id")
    p = command(ssub, "delete", cmd_stream_delete, "= channel delete",
                 "Delete the channel.", "  hearth stream delete 3f2a9c1b7d0e", parents=[common])
    p.add_argument("id")
    p = command(ssub, "rotate-key", cmd_channel_rotate_key, "= channel rotate-key",
                 "Issue a new key.", "  hearth stream rotate-key 3f2a9c1b7d0e",
                 parents=[common])
    p.add_argument("id")
    json_flag(p)


def _add_chat(sub: Any, common: argparse.ArgumentParser) -> None:
    chat = sub.add_parser("chat", help="read and write a broadcast's live chat",
                          description="Read a broadcast's chat or post as the operator "
                                      "(NIP-53 kind 1311). A channel id means its live or "
                                      "latest broadcast.", formatter_class=Formatter)
    csub = chat.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(csub, "list", cmd_chat_list, "show a broadcast's chat",
                 "Show recent chat messages, oldest first.",
                 "  hearth chat list 9d8e7f6a5b4c --limit 20", parents=[common])
    p.add_argument("id", help="broadcast id (or channel id)")
    p.add_argument("--limit", type=int, default=50)
    json_flag(p)
    p = command(csub, "send", cmd_chat_send, "post a chat message",
                 "Post a message signed as the operator (or the service key).",
                 "  hearth chat send 9d8e7f6a5b4c \"Back in five minutes\"", parents=[common])
    p.add_argument("id", help="broadcast id (or channel id)")
    p.add_argument("text")
    json_flag(p)


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="hearth", description="Hearth: a self-hosted live-streaming appliance.",
        epilog="examples:\n"
               "  hearth serve --http 0.0.0.0:8080\n"
               "  hearth channel create --title \"Friday session\"\n"
               "  hearth broadcast list --status live\n"
               "  hearth tui\n\n"
               "`hearth COMMAND --help` shows each command's options and examples.",
        formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"hearth {app_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The options that build the configuration: `serve` and `config show` share them.
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--config", type=Path, help="TOML config file (env HEARTH_CONFIG)")
    settings.add_argument("--http", type=_hostport, metavar="[HOST:]PORT",
                          help="public HTTP address (default 0.0.0.0:8080)")
    settings.add_argument("--rtmp", type=_hostport, metavar="[HOST:]PORT",
                          help="RTMP ingest address (default 0.0.0.0:1935)")
    settings.add_argument("--srt", type=_hostport, metavar="[HOST:]PORT",
                          help="also take SRT publishers on this UDP address "
                               "(e.g. 8890; [srt] enabled)")
    settings.add_argument("--public-url",
                          help="base URL viewers use, e.g. https://live.example.org")
    settings.add_argument("--relay", action="append", default=None, metavar="URL",
                          help="Nostr relay (repeatable)")
    settings.add_argument("--no-relays", action="store_true", help="use no Nostr relays")
    settings.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    command(sub, "serve", cmd_serve, "run the appliance",
             "Run the appliance (RTMP in, HLS out, admin API).",
             "  hearth serve\n  hearth serve --http 8081 --no-relays",
             client=False, parents=[common, settings])
    config = sub.add_parser("config", help="show the effective configuration",
                            description="Show the configuration.", formatter_class=Formatter)
    config_sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show_config = command(
        config_sub, "show", cmd_config_show, "effective values and where each came from",
        "Print every option's effective value and its source (default, file, env, flag), as "
        "`hearth serve` with the same options would use it. Reference: docs/configuration.md.",
        "  hearth config show\n  hearth config show --http 8081 --json", client=False,
        parents=[common, settings])
    json_flag(show_config)

    _add_channel(sub, common)
    _add_broadcast(sub, common)
    _add_chat(sub, common)
    add_block_parser(sub, common)
    sub.choices["block"].set_defaults(func=block_command, client=True)
    cli_nostr.add_parser(sub, common)
    sub.choices["nostr"].set_defaults(func=cli_nostr.run, client=True)
    add_recording_parser(sub, common)
    sub.choices["recording"].set_defaults(func=recording_command, client=True)
    add_webhook_parser(sub, common)
    cli_access.add_grant_parser(sub, common)
    add_analytics_parser(sub, common)
    _add_stream_aliases(sub, common)
    command(sub, "tui", cmd_tui, "the operator's dashboard (Textual)",
             "Open the live dashboard on the running appliance.", "  hearth tui",
             client=False, parents=[common])
    status = command(sub, "status", cmd_status, "one-screen health summary",
                      "Print a one-screen health summary.", "  hearth status --json",
                      parents=[common])
    json_flag(status)
    return parser


def _socket_path(args: argparse.Namespace) -> Path:
    if args.admin_socket:
        return Path(args.admin_socket)
    if os.environ.get("HEARTH_ADMIN_SOCKET"):
        return Path(os.environ["HEARTH_ADMIN_SOCKET"])
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    candidate = default_socket(data_dir)
    if not candidate.exists() and not args.data_dir and SYSTEM_SOCKET.exists():
        return SYSTEM_SOCKET
    return candidate


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse; an unknown option is reported with the usage of the subcommand it was given to."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        target: argparse.ArgumentParser = getattr(args, "parser", parser)
        target.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


async def _run_client(func: ClientCommand, args: argparse.Namespace) -> int:
    async with UnixSocketAdminClient(_socket_path(args)) as client:
        return await func(client, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if not args.client:
        result: int = args.func(args)
        return result
    try:
        return asyncio.run(_run_client(args.func, args))
    except ApplianceError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
