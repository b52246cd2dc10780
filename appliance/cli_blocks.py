"""``hearth block list|lift ADDR``: addresses blocked for wrong stream keys (issue 9 §3).

Kept apart from :mod:`appliance.cli` so the command table there stays small; ``cli`` calls
:func:`add_block_parser` and dispatches ``block`` to :func:`block_command`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any
from urllib.parse import quote

from appliance.api.schema import AddressBlock, safe_text


def add_block_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``block list`` and ``block lift`` on the top-level subparsers."""
    block = sub.add_parser(
        "block", help="list or lift addresses blocked for wrong stream keys",
        description="Addresses that sent too many wrong stream keys are blocked for a while. "
                    "A block stops wrong guesses only: the correct key is always accepted.")
    bsub = block.add_subparsers(dest="action", required=True, metavar="ACTION")
    blist = bsub.add_parser("list", parents=[common], help="list blocked addresses",
                            description="List blocked addresses with their expiry.")
    blist.add_argument("--json", action="store_true", help="machine-readable output")
    lift = bsub.add_parser("lift", parents=[common], help="lift an address's block now",
                           description="Lift the block of ADDR (and forget its wrong keys).")
    lift.add_argument("address", metavar="ADDR")
    lift.add_argument("--json", action="store_true", help="machine-readable output")


async def block_command(client: Any, args: argparse.Namespace) -> int:
    """Run ``block list`` / ``block lift`` against the admin API."""
    if args.action == "list":
        data = await client.request("GET", "/v1/blocks")
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        blocks = [AddressBlock.from_dict(d) for d in data]
        if not blocks:
            print("No blocked addresses.")
            return 0
        print(f"{'ADDRESS':40} {'UNTIL':19} {'WRONG KEYS':>10} {'WHILE BLOCKED':>13}")
        for b in blocks:
            until = dt.datetime.fromtimestamp(b.until).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{safe_text(b.address, 40):40} {until:19} {b.failures:>10} "
                  f"{b.attempts_while_blocked:>13}")
        print("The correct stream key is accepted from these addresses; "
              "lift a block with: hearth block lift ADDR")
        return 0
    data = await client.request("DELETE", f"/v1/blocks/{quote(args.address, safe='')}")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"Block of {safe_text(data['address'], 60)} lifted.")
    return 0
