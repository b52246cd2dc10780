"""Chat latency on loopback: relay → page and page → page, p50/p99 (prints numbers, no asserts).

Runs a real ``nostr-relay`` (the test venv under ``~/.cache/hearth-tests``) and a real
``hearth serve``. A "page" is a WebSocket client speaking exactly what ``chat.js`` speaks on
``/api/streams/{id}/chat/ws``.

* relay → page: a 1311 is published straight to the relay; timed until the page receives it
  (relay fan-out → Hearth's subscription → verify → SQLite commit → bus → page).
* page → page: page A sends a browser-signed 1311; timed until page B receives it
  (verify → commit + outbox → bus → page B).

Each message uses a fresh key and messages are paced, so the 2 / 3 s per-key and 10 / 3 s
per-IP rate limits never trigger. Usage: ``python bench/chat_latency.py [--count N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from relay_client import PrivateKeySigner, UnsignedEvent  # noqa: E402
from tests.helpers.appliance import ApplianceProcess, short_tmpdir  # noqa: E402
from tests.relay_client.conftest import RelayProcess, nostr_relay_venv  # noqa: E402


def _event(address: str, text: str) -> dict[str, Any]:
    signer = PrivateKeySigner.generate()
    return signer.sign_event(UnsignedEvent(kind=1311, content=text, tags=(("a", address, ""),),
                                           created_at=int(time.time()))).to_dict()


async def _wait_for(ws: ClientConnection, event_id: str) -> None:
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("type") == "message" and msg["message"]["id"] == event_id:
            return


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(f"{name:16} n={len(ms):3}  p50 {_pct(ms, 50):7.1f} ms  p99 {_pct(ms, 99):7.1f} ms  "
          f"mean {statistics.fmean(ms):7.1f} ms  max {max(ms):7.1f} ms")


async def run(app: ApplianceProcess, relay: RelayProcess, sid: str, address: str,
              count: int) -> None:
    ws_url = app.base.replace("http", "ws") + f"/api/streams/{sid}/chat/ws"
    async with connect(ws_url) as page_a, connect(ws_url) as page_b, connect(relay.url) as rel:
        for ws in (page_a, page_b):
            assert json.loads(await ws.recv())["type"] == "hello"
        relay_to_page: list[float] = []
        for i in range(count):
            ev = _event(address, f"relay {i}")
            t0 = time.perf_counter()
            await rel.send(json.dumps(["EVENT", ev]))
            await asyncio.wait_for(_wait_for(page_b, ev["id"]), 10)
            relay_to_page.append(time.perf_counter() - t0)
            await asyncio.sleep(0.35)
        page_to_page: list[float] = []
        for i in range(count):
            ev = _event(address, f"page {i}")
            t0 = time.perf_counter()
            await page_a.send(json.dumps({"type": "event", "event": ev}))
            await asyncio.wait_for(_wait_for(page_b, ev["id"]), 10)
            page_to_page.append(time.perf_counter() - t0)
            await asyncio.sleep(0.35)
    _report("relay -> page", relay_to_page)
    _report("page -> page", page_to_page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    relay = RelayProcess(nostr_relay_venv(), short_tmpdir())
    relay.start()
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": relay.url, "HEARTH_LOG_LEVEL": "WARNING",
        "PYTHONASYNCIODEBUG": ""})  # any non-empty value, "0" too, enables debug mode
    app.start()
    try:
        sid = app.create_stream("Latency bench")["id"]
        info = app.cli_json("chat", "list", sid)  # warms the admin path; empty list
        assert info == []
        address = json.loads(app.get(f"/watch/{sid}").text.split('data-config="', 1)[1]
                            .split('"', 1)[0].replace("&quot;", '"'))["chat"]["address"]
        print(f"Hearth chat latency on loopback ({args.count} messages per path)")
        asyncio.run(run(app, relay, sid, address, args.count))
    finally:
        app.stop()
        relay.stop()


if __name__ == "__main__":
    main()
