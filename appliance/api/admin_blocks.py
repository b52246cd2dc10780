"""Admin routes for addresses blocked for wrong stream keys (issue 9 §3).

* ``GET /v1/blocks`` → list of :class:`~appliance.api.schema.AddressBlock`, oldest first.
* ``DELETE /v1/blocks/{address}`` → ``{"address": …, "lifted": true}``, or 404 if the address
  is not blocked.

A block only stops wrong guesses (the correct key is accepted from a blocked address); lifting
it also forgets the address's earlier wrong keys.
"""

from __future__ import annotations

import ipaddress
import time

from aiohttp import web

from appliance.api.schema import AddressBlock
from appliance.state import AppState

__all__ = ["add_block_routes", "list_blocks"]


def list_blocks(state: AppState) -> list[AddressBlock]:
    """The active blocks as DTOs (monotonic times converted to Unix seconds)."""
    now_mono, now_wall = time.monotonic(), time.time()
    return [
        AddressBlock(address=addr, since=round(now_wall - (now_mono - b.since), 3),
                     until=round(now_wall + (b.until - now_mono), 3), failures=b.failures,
                     attempts_while_blocked=b.attempts)
        for addr, b in state.ingest.throttle.blocks(now_mono)
    ]


def add_block_routes(app: web.Application, key: web.AppKey[AppState]) -> None:
    async def get_blocks(request: web.Request) -> web.Response:
        return web.json_response([b.to_dict() for b in list_blocks(request.app[key])])

    async def lift_block(request: web.Request) -> web.Response:
        raw = request.match_info["address"]
        try:
            addr = str(ipaddress.ip_address(raw))
        except ValueError:
            return web.json_response({"error": "not an IP address", "field": "address"},
                                     status=400)
        state = request.app[key]
        if not state.ingest.throttle.lift(addr):
            return web.json_response({"error": f"{addr} is not blocked"}, status=404)
        state.service.log("info", "ingest.unblocked", f"block of {addr} lifted by the operator")
        return web.json_response({"address": addr, "lifted": True})

    app.router.add_get("/v1/blocks", get_blocks)
    app.router.add_delete("/v1/blocks/{address}", lift_block)
