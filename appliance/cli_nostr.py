"""``hearth nostr …``: the operator's Nostr identity and NIP-46 remote signer (self-contained:
:func:`add_parser` registers the subcommand, :func:`run` executes it over the admin API)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from appliance.api.admin_client import ApplianceError, UnixSocketAdminClient
from appliance.api.schema import pairing_qr


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``hearth nostr show|connect|disconnect``."""
    nostr = sub.add_parser("nostr", help="the operator's Nostr identity and remote signer",
                           description="Show Hearth's Nostr identities; pair the operator's "
                           "NIP-46 remote signer (bunker) so live events and chat are signed "
                           "by the operator's key without it ever being on this machine.")
    nsub = nostr.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = nsub.add_parser("show", parents=[common], help="identities and signer state",
                           description="Show the service key, the operator, the signer's "
                           "state and any events waiting for it.")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    connect = nsub.add_parser(
        "connect", parents=[common], help="pair a NIP-46 remote signer",
        description="Pair a remote signer: give its bunker:// URI, or use --nostrconnect to "
        "show a nostrconnect:// URI (and QR code) for the signer app to scan.")
    connect.add_argument("uri", nargs="?", help="bunker://<pubkey>?relay=…&secret=…")
    connect.add_argument("--nostrconnect", action="store_true",
                         help="show a nostrconnect:// URI and wait for the signer")
    connect.add_argument("--wait", type=float, default=300.0,
                         help="seconds to wait for the signer (nostrconnect)")
    nsub.add_parser("disconnect", parents=[common], help="forget the remote signer",
                    description="Unpair the remote signer; events are signed locally again.")
    goal = nsub.add_parser(
        "goal", parents=[common], help="set or show a stream's zap goal (NIP-75)",
        description="Set a zap goal for a stream (a kind 9041 signed as the operator, linked "
        "from the stream's live event and shown as a progress bar), or show its progress.")
    goal.add_argument("id", help="stream id")
    goal.add_argument("--sats", type=int, help="target amount in sats (sets a new goal)")
    goal.add_argument("--title", default="", help="what the zaps are for")
    goal.add_argument("--json", action="store_true", help="machine-readable output")


async def naddr_line(client: UnixSocketAdminClient, stream_id: str) -> str | None:
    """``nostr:naddr1…`` of a stream for ``hearth stream show`` (None if Nostr is off)."""
    try:
        data = await client.request("GET", f"/v1/streams/{stream_id}/nostr")
    except ApplianceError:
        return None
    uri = data.get("uri") if isinstance(data, dict) else None
    return uri if isinstance(uri, str) else None


def _print_info(info: dict[str, Any]) -> None:
    print(f"Service key   {info['service_npub']}")
    print(f"Signing as    {info['signing_as']} ({info['activity_pubkey']})")
    print(f"Operator      {info['operator_pubkey'] or '-'}")
    signer = info.get("signer") or {}
    state = signer.get("state", "none")
    print(f"Remote signer {state}", end="")
    if signer.get("remote_signer_pubkey"):
        print(f"  {signer['remote_signer_pubkey'][:16]}… via {', '.join(signer['remote_relays'])}",
              end="")
    print()
    if signer.get("last_error"):
        print(f"  last error: {signer['last_error']}")
    for sid, reason in (signer.get("waiting") or {}).items():
        print(f"  waiting: live event of {sid}: {reason}")


async def run(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    if args.action == "show":
        info = await client.request("GET", "/v1/nostr")
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            _print_info(info)
        return 0
    if args.action == "goal":
        return await _goal(client, args)
    if args.action == "disconnect":
        await client.request("DELETE", "/v1/nostr/signer")
        print("Remote signer forgotten.")
        return 0
    if args.nostrconnect:
        uri = (await client.request("POST", "/v1/nostr/signer", {"nostrconnect": True}))["uri"]
        print("Scan with your signer app (or paste the URI):\n")
        print(pairing_qr(uri))
        print(f"\n{uri}\n\nWaiting for the signer…", flush=True)
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            signer = (await client.request("GET", "/v1/nostr"))["signer"]
            if signer["state"] == "connected":
                print(f"Paired: signing as {signer['user_pubkey']}.")
                return 0
            if signer["state"] != "pairing":
                print(f"Pairing failed: {signer.get('last_error') or signer['state']}")
                return 1
        print("Timed out waiting for the signer.")
        return 1
    if not args.uri:
        print("hearth: give a bunker:// URI or --nostrconnect")
        return 2
    signer = await client.request("POST", "/v1/nostr/signer", {"bunker": args.uri})
    print(f"Paired: live events and operator chat are now signed as {signer['user_pubkey']}.")
    return 0


async def _goal(client: UnixSocketAdminClient, args: argparse.Namespace) -> int:
    if args.sats is not None:
        goal = await client.request("POST", f"/v1/streams/{args.id}/goal",
                                    {"amount_sats": args.sats,
                                     "title": args.title or "Stream goal"})
    else:
        goal = await client.request("GET", f"/v1/streams/{args.id}/goal")
    if args.json:
        print(json.dumps(goal, indent=2))
    elif goal is None:
        print("No goal. Set one: hearth nostr goal ID --sats 5000 --title \"…\"")
    else:
        print(f"Goal: {goal['title']}: {goal['progress_msats'] // 1000} / "
              f"{goal['amount_msats'] // 1000} sats  (event {goal['event_id'][:12]})")
    return 0
