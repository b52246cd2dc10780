"""The ``hearth`` command line: ``serve`` runs the appliance; the rest talk to it.

Every client subcommand reaches the running appliance through the admin API on its Unix
socket, found from ``--admin-socket``, else ``HEARTH_ADMIN_SOCKET``, else the data dir
(``--data-dir`` / ``HEARTH_DATA_DIR`` / platformdirs), else the system service's
``/run/hearth/admin.sock``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance import cli_nostr
from appliance.api.client import AdminClient, AdminError
from appliance.api.schema import AdminStream, ChatMessage, Status, StreamCredentials, safe_text
from appliance.cli_blocks import add_block_parser, block_command
from appliance.cli_recordings import add_recording_parser, recording_command
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

SYSTEM_SOCKET = Path("/run/hearth/admin.sock")


def _hostport(value: str) -> tuple[str, int]:
    try:
        return parse_address(value)  # a bare port means 0.0.0.0:PORT
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="data directory (env HEARTH_DATA_DIR)")
    common.add_argument("--admin-socket", type=Path,
                        help="admin API socket (default: in the data dir, or /run/hearth)")

    parser = argparse.ArgumentParser(
        prog="hearth", description="Hearth: a self-hosted live-streaming appliance.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The options that build the configuration: `serve` and `config show` share them.
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--config", type=Path, help="TOML config file (env HEARTH_CONFIG)")
    settings.add_argument("--http", type=_hostport, metavar="[HOST:]PORT",
                          help="public HTTP address (default 0.0.0.0:8080)")
    settings.add_argument("--rtmp", type=_hostport, metavar="[HOST:]PORT",
                          help="RTMP ingest address (default 0.0.0.0:1935)")
    settings.add_argument("--public-url",
                          help="base URL viewers use, e.g. https://live.example.org")
    settings.add_argument("--relay", action="append", default=None, metavar="URL",
                          help="Nostr relay (repeatable)")
    settings.add_argument("--no-relays", action="store_true", help="use no Nostr relays")
    settings.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    sub.add_parser("serve", parents=[common, settings], help="run the appliance",
                   description="Run the appliance (RTMP in, HLS out, admin API).")
    config = sub.add_parser("config", help="show the effective configuration",
                            description="Show the configuration.")
    config_sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show_config = config_sub.add_parser(
        "show", parents=[common, settings], help="effective values and where each came from",
        description="Print every option's effective value and its source (default, file, "
        "env, flag), as `hearth serve` with the same options would use it. Reference: "
        "docs/configuration.md.")
    show_config.add_argument("--json", action="store_true", help="machine-readable output")

    stream = sub.add_parser("stream", help="create and manage streams",
                            description="Create, list, show, end streams; rotate keys.")
    ssub = stream.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ssub.add_parser("create", parents=[common],
                             help="create a stream (shows its key once)",
                             description="Create a stream; prints the RTMP URL and key once.")
    create.add_argument("--title", required=True)
    create.add_argument("--summary", default="")
    create.add_argument("--tag", action="append", default=[], help="tag (repeatable)")
    create.add_argument("--image", default="", help="image URL (https)")
    create.add_argument("--json", action="store_true", help="machine-readable output")
    lst = ssub.add_parser("list", parents=[common], help="list streams",
                          description="List streams, newest first.")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    show = ssub.add_parser("show", parents=[common], help="show one stream",
                           description="Show a stream with its ingest health.")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    end = ssub.add_parser("end", parents=[common], help="end a stream now",
                          description="End a stream now; its publisher is disconnected.")
    end.add_argument("id")
    delete = ssub.add_parser("delete", parents=[common], help="delete a stream",
                             description="End a stream if live, remove it from listings and "
                             "pages, and ask Nostr relays to delete its events (NIP-09).")
    delete.add_argument("id")
    rotate = ssub.add_parser("rotate-key", parents=[common], help="issue a new stream key",
                             description="Issue a new key; the old one stops working at once.")
    rotate.add_argument("id")
    rotate.add_argument("--json", action="store_true", help="machine-readable output")

    chat = sub.add_parser("chat", help="read and write a stream's live chat",
                          description="Read a stream's chat or post as the operator (NIP-53).")
    csub = chat.add_subparsers(dest="action", required=True, metavar="ACTION")
    clist = csub.add_parser("list", parents=[common], help="show a stream's chat",
                            description="Show recent chat messages, oldest first.")
    clist.add_argument("id")
    clist.add_argument("--limit", type=int, default=50)
    clist.add_argument("--json", action="store_true", help="machine-readable output")
    csend = csub.add_parser("send", parents=[common], help="post a chat message",
                            description="Post a message signed as the operator (or service).")
    csend.add_argument("id")
    csend.add_argument("text")
    csend.add_argument("--json", action="store_true", help="machine-readable output")

    cli_nostr.add_parser(sub, common)
    sub.add_parser("tui", parents=[common], help="the operator's dashboard (Textual)",
                   description="Open the live dashboard on the running appliance.")
    status = sub.add_parser("status", parents=[common], help="one-screen health summary",
                            description="Print a one-screen health summary.")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    add_block_parser(sub, common)
    add_recording_parser(sub, common)
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


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_credentials(c: StreamCredentials, verb: str) -> None:
    print(f"{verb}: {c.title} (id {c.id})")
    print(f"  Server:      {c.rtmp_url}")
    print(f"  Stream key:  {c.stream_key}")
    print("               (shown once: paste it into OBS now; if lost, rotate it)")
    print(f"  Watch:       {c.watch_url}")
    print(f"  HLS:         {c.hls_url}")
    print()
    print(c.obs_advice)


def _print_stream(s: AdminStream) -> None:
    print(f"{safe_text(s.title)}  [{s.status}]  id {s.id}")
    if s.summary:
        print(f"  {safe_text(s.summary)}")
    if s.tags:
        print("  tags: " + " ".join(f"#{t}" for t in s.tags))
    print(f"  created {_when(s.created_at)}  started {_when(s.started_at)}  "
          f"ended {_when(s.ended_at)}")
    print(f"  viewers {s.viewers} now, {s.peak_viewers} peak, {s.total_viewers} total")
    print(f"  watch {s.watch_url}")
    print(f"  hls   {s.hls_url}")
    if s.ingest:
        i = s.ingest
        res = f"{i.width}x{i.height}" if i.width else "?"
        print(f"  ingest from {i.remote}: {i.verdict}; {i.video_codec} {res} {i.fps} fps, "
              f"{i.bitrate_kbps} kbit/s, keyframe every {i.keyframe_interval} s, "
              f"B-frames {'yes' if i.bframes else 'no'}; audio {i.audio_codec} "
              f"{i.sample_rate} Hz; reconnects {i.reconnects}; "
              f"frames dropped {i.frames_discarded}")
        for reason in i.verdict_reasons:
            print(f"  WARNING {safe_text(reason)}")
    elif s.status == "live" and s.grace_until:
        print(f"  publisher disconnected; waiting until {_when(s.grace_until)}")


async def _client_command(args: argparse.Namespace) -> int:
    async with AdminClient(_socket_path(args)) as client:
        if args.command == "status":
            data = await client.request("GET", "/v1/status")
            if args.json:
                print(json.dumps(data, indent=2))
                return 0
            st = Status.from_dict(data)
            print(f"Hearth {st.version}: up {int(st.uptime)} s")
            print(f"  public URL  {st.public_url}")
            print(f"  RTMP URL    {st.rtmp_url}")
            print(f"  data dir    {st.data_dir}")
            print(f"  streams     {st.streams_total} total, {st.streams_live} live, "
                  f"{st.publishers} publishing, {st.viewers} viewers")
            print(f"  RTMP        {st.rtmp_connections} connections, "
                  f"{st.auth_failures} refused keys, {st.frames_discarded} frames dropped, "
                  f"{st.rtmp_refused} refused before publishing")
            if st.blocked_addresses:
                print(f"  blocked     {st.blocked_addresses} address(es) for wrong keys "
                      "(hearth block list)")
            for w in st.ingest_warnings:
                print(f"  WARNING ingest {safe_text(w)}")
            for e in st.recent_errors:
                print(f"  {_when(e.at)} {e.level.upper():7} {safe_text(e.kind, 40)}: "
                      f"{safe_text(e.message)}")
            return 0
        action = args.action
        if args.command == "nostr":
            return await cli_nostr.run(client, args)
        if args.command == "chat":
            return await _chat_command(client, args)
        if args.command == "block":
            return await block_command(client, args)
        if args.command == "recording":
            return await recording_command(client, args)
        if action == "create":
            body = {"title": args.title, "summary": args.summary, "tags": args.tag,
                    "image": args.image}
            data = await client.request("POST", "/v1/streams", body)
            if args.json:
                print(json.dumps(data, indent=2))
            else:
                _print_credentials(StreamCredentials.from_dict(data), "Stream created")
            return 0
        if action == "list":
            data = await client.request("GET", "/v1/streams")
            if args.json:
                print(json.dumps(data, indent=2))
                return 0
            streams = [AdminStream.from_dict(d) for d in data]
            if not streams:
                print("No streams yet. Create one: hearth stream create --title \"…\"")
            else:
                print(f"{'ID':14} {'STATUS':8} {'VIEWERS':>7}  TITLE")
                for s in streams:
                    print(f"{s.id:14} {s.status:8} {s.viewers:>7}  {safe_text(s.title)}")
            return 0
        if action == "show":
            data = await client.request("GET", f"/v1/streams/{args.id}")
            if args.json:
                print(json.dumps(data, indent=2))
            else:
                _print_stream(AdminStream.from_dict(data))
                link = await cli_nostr.naddr_line(client, args.id)
                if link:
                    print(f"  nostr {link}")
            return 0
        if action == "end":
            data = await client.request("POST", f"/v1/streams/{args.id}/end")
            print(f"Stream {args.id} is {data['status']}.")
            return 0
        if action == "delete":
            await client.request("DELETE", f"/v1/streams/{args.id}")
            print(f"Stream {args.id} deleted.")
            return 0
        if action == "rotate-key":
            data = await client.request("POST", f"/v1/streams/{args.id}/rotate-key")
            if args.json:
                print(json.dumps(data, indent=2))
            else:
                _print_credentials(StreamCredentials.from_dict(data), "New key for")
            return 0
    raise AssertionError(args)


async def _chat_command(client: AdminClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        data = await client.request("GET", f"/v1/streams/{args.id}/chat?limit={args.limit}")
        if args.json:
            print(json.dumps(data, indent=2))
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
    data = await client.request("POST", f"/v1/streams/{args.id}/chat", {"content": args.text})
    if args.json:
        print(json.dumps(data, indent=2))
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
    if args.admin_socket:
        put("admin.socket_path", str(args.admin_socket), "--admin-socket")
    if args.no_relays:
        put("nostr.relays", [], "--no-relays")
    elif args.relay:
        put("nostr.relays", args.relay, "--relay")
    return overrides, flags


def _warn(message: str) -> None:
    print(f"hearth: warning: {message}", file=sys.stderr)


def _config_show(args: argparse.Namespace) -> int:
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


def _serve(args: argparse.Namespace) -> int:
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
    from appliance.lifecycle import serve

    try:
        asyncio.run(serve(config))
    except ConfigError as exc:  # found only at start-up (e.g. an unreadable key file)
        print(f"hearth: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hearth: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "config":
        return _config_show(args)
    if args.command == "tui":  # exec, not import: the appliance never loads the TUI
        os.execv(sys.executable, [sys.executable, "-m", "tui",
                                  "--admin-socket", str(_socket_path(args))])
    try:
        return asyncio.run(_client_command(args))
    except AdminError as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
