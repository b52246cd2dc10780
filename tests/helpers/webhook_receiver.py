"""A real webhook receiver on loopback (aiohttp server) that verifies every signature."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from appliance.webhooks.payload import verify


@dataclass
class Received:
    id: str
    type: str
    body: dict[str, Any]
    signature_ok: bool
    at: float


@dataclass
class Receiver:
    """Collects POSTs; ``mode`` "ok" answers 204, "hang" never answers, "slow" answers after
    ``delay``, "error" answers 500, "huge" answers 500 with a 5 MB body."""

    secret: str = ""
    mode: str = "ok"
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> set[str]:
        return {r.id for r in self.received}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        raw = await request.read()
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "error":
            return web.Response(status=500, text="nope\x1b[31m\nsecond line")
        if self.mode == "huge":
            return web.Response(status=500, body=b"x" * 5_000_000)
        ok = verify(self.secret, request.headers.get("Hearth-Webhook-Timestamp", ""), raw,
                    request.headers.get("Hearth-Webhook-Signature", ""), now=time.time())
        body = json.loads(raw)
        assert request.headers["Hearth-Webhook-Id"] == body["id"]
        assert request.headers["Content-Type"] == "application/json"
        self.received.append(Received(body["id"], body["type"], body, ok, time.time()))
        return web.Response(status=204)

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ThreadedReceiver:
    """A :class:`Receiver` on its own loop in a thread (for tests driving a real process)."""

    def __init__(self, port: int = 0) -> None:
        self.receiver = Receiver(port=port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def start(self) -> ThreadedReceiver:
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
