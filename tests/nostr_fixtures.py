"""Nostr fixtures shared by relay_client and appliance tests: a real relay, nostr-tools in node.

Import the fixtures into a test module (``from tests.nostr_fixtures import nostr_relay, …``).
The relay process and the nostr-tools install are the ones from ``tests/relay_client``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.relay_client.conftest import RelayProcess, nostr_relay_venv
from tests.relay_client.test_nostr_tools_interop import nostr_tools_dir

__all__ = ["Bunker", "RelayProcess", "nostr_relay", "nostr_tools_dir", "node_run", "relay_query",
           "relay_publish", "run_sync"]


@pytest.fixture
def nostr_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    relay = RelayProcess(nostr_relay_venv(), tmp_path)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


def node_run(tools_dir: Path, script: str, stdin: Any) -> Any:
    """Run ``script`` with node inside the nostr-tools install; JSON in, JSON out."""
    node = shutil.which("node")
    assert node
    out = subprocess.run([node, "-e", script], input=json.dumps(stdin), cwd=tools_dir,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


async def _query(url: str, flt: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    # By id: an event stored while the REQ runs can arrive twice (stored result and live
    # broadcast before EOSE); NIP-01 clients deduplicate by id, and so does this one.
    events: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(timeout), connect(url) as ws:
        await ws.send(json.dumps(["REQ", "q", flt]))
        while True:
            msg = json.loads(await ws.recv())
            if msg[0] == "EVENT":
                events.setdefault(msg[2]["id"], msg[2])
            elif msg[0] in ("EOSE", "CLOSED"):
                return list(events.values())


def run_sync(coro: Any) -> Any:
    """``asyncio.run`` in a fresh thread (Playwright's sync API owns this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def relay_query(url: str, flt: dict[str, Any], timeout: float = 5.0) -> list[dict[str, Any]]:
    """Stored events matching ``flt``, straight from the relay (NIP-01 REQ until EOSE)."""
    result: list[dict[str, Any]] = run_sync(_query(url, flt, timeout))
    return result


async def _publish(url: str, event: dict[str, Any], timeout: float) -> list[Any]:
    async with asyncio.timeout(timeout), connect(url) as ws:
        await ws.send(json.dumps(["EVENT", event]))
        while True:
            msg = json.loads(await ws.recv())
            if msg[0] == "OK":
                return list(msg)


def relay_publish(url: str, event: dict[str, Any], timeout: float = 5.0) -> list[Any]:
    result: list[Any] = run_sync(_publish(url, event, timeout))
    return result


class Bunker:
    """The node NIP-46 bunker (tests/nip46_bunker.js) as a process; restartable."""

    def __init__(self, tools_dir: Path, relay_url: str, user_sk: str, bunker_sk: str,
                 secret: str = "", refuse_kinds: tuple[int, ...] = ()) -> None:
        self.tools_dir = tools_dir
        self.config: dict[str, Any] = {"relay": relay_url, "user_sk": user_sk,
                                       "bunker_sk": bunker_sk, "secret": secret,
                                       "nostrconnect": None, "refuse_kinds": list(refuse_kinds)}
        self.proc: subprocess.Popen[str] | None = None

    def start(self, nostrconnect: str | None = None, timeout: float = 20.0) -> None:
        node = shutil.which("node")
        assert node
        script = Path(__file__).parent / "nip46_bunker.js"
        self.proc = subprocess.Popen(
            [node, "--experimental-websocket", "--no-warnings", str(script),
             json.dumps({**self.config, "nostrconnect": nostrconnect})],
            cwd=self.tools_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # require() resolves from the script's directory; point it at the install.
            env={**os.environ, "NODE_PATH": str(self.tools_dir / "node_modules")})
        assert self.proc.stdout is not None
        ex = concurrent.futures.ThreadPoolExecutor(1)
        try:
            line = ex.submit(self.proc.stdout.readline).result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            line = ""
        if not line.startswith("ready"):
            self.stop()
            err = self.proc.stderr.read() if self.proc and self.proc.stderr else ""
            raise AssertionError(f"bunker did not start: {line!r} {err[-500:]}")
        ex.shutdown(wait=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
