"""Fixtures for relay_client: fixed keys, a real ``nostr-relay`` process, a fake relay.

The real relay is the PyPI ``nostr-relay`` package. Its dependency pins (aiohttp, uvicorn,
sqlalchemy…) are not ours, so it lives in its own venv under ``$HEARTH_TEST_CACHE`` (default
``~/.cache/hearth-tests``), made by ``scripts/install-test-deps.sh`` from
``tests/nostr-relay-requirements.txt``: tests never install anything. Without it they skip
(and fail under CI). ``HEARTH_NOSTR_RELAY_VENV`` points at an existing venv instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from relay_client.signing import PrivateKeySigner

NOSTR_RELAY_REQUIREMENTS = Path(__file__).resolve().parent.parent / "nostr-relay-requirements.txt"

# Fixed test keys (never used anywhere real).
ALICE_SECRET = "0000000000000000000000000000000000000000000000000000000000000003"
BOB_SECRET = "b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef"


@pytest.fixture
def alice() -> PrivateKeySigner:
    return PrivateKeySigner(bytes.fromhex(ALICE_SECRET))


@pytest.fixture
def bob() -> PrivateKeySigner:
    return PrivateKeySigner(bytes.fromhex(BOB_SECRET))


def cache_dir() -> Path:
    base = os.environ.get("HEARTH_TEST_CACHE") or os.path.expanduser("~/.cache/hearth-tests")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _skip_or_fail(reason: str) -> None:
    # In CI a missing real relay is a failure, not a silent skip.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def nostr_relay_venv() -> Path:
    """The venv with ``nostr-relay`` that scripts/install-test-deps.sh made (never installs)."""
    override = os.environ.get("HEARTH_NOSTR_RELAY_VENV")
    if override:
        return Path(override)
    venv = cache_dir() / "nostr-relay-venv"
    stamp = venv / "hearth-requirements.txt"
    if not (venv / "bin" / "nostr-relay").exists() or not stamp.exists() or (
            stamp.read_text() != NOSTR_RELAY_REQUIREMENTS.read_text()):
        _skip_or_fail(f"{NOSTR_RELAY_REQUIREMENTS.name} is not installed in {venv}: "
                      "run `bash scripts/install-test-deps.sh`")
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_RELAY_CONFIG = """\
DEBUG: false
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  validators:
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
gunicorn:
  bind: 127.0.0.1:{port}
  workers: 1
  loglevel: warning
  reload: false
max_event_size: 65536
oldest_event: 31536000
subscription_limit: 32
max_limit: 6000
message_timeout: 1800
authentication:
  enabled: false
"""


@dataclass
class RelayProcess:
    """A real ``nostr-relay serve --use-uvicorn`` on 127.0.0.1 with a temp sqlite db."""

    venv: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        cfg = self.workdir / "config.yaml"
        cfg.write_text(_RELAY_CONFIG.format(db=self.workdir / "relay.sqlite3", port=self.port))
        with open(self.workdir / "relay.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "nostr-relay"), "-c", str(cfg), "serve", "--use-uvicorn"],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nostr-relay exited: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nostr-relay did not listen within {timeout}s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, like a crash; the db file stays for a restart on the same port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log_tail(self) -> str:
        log = self.workdir / "relay.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""


@pytest.fixture(scope="session")
def relay_venv() -> Path:
    return nostr_relay_venv()


@pytest.fixture
def nostr_relay(relay_venv: Path, tmp_path: Path) -> Iterator[RelayProcess]:
    relay = RelayProcess(relay_venv, tmp_path)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


# -- in-process fake relay ------------------------------------------------------------

Handler = Callable[[ServerConnection, "FakeRelay"], Awaitable[None]]


@dataclass
class FakeRelay:
    """A scripted relay on ``websockets.serve``: ``handler(ws, relay)`` drives each client.

    ``received`` records every parsed client frame across connections.
    """

    handler: Handler
    received: list[list[object]] = field(default_factory=list)
    connections: int = 0
    server: Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _serve(self, ws: ServerConnection) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            await self.handler(ws, self)

    async def recv(self, ws: ServerConnection) -> list[object]:
        frame = json.loads(await ws.recv())
        assert isinstance(frame, list)
        self.received.append(frame)
        return frame

    async def start(self, port: int = 0) -> None:
        self.server = await serve(self._serve, "127.0.0.1", port, max_size=2**20)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def fake_relay_factory() -> AsyncIterator[Callable[[Handler], Awaitable[FakeRelay]]]:
    relays: list[FakeRelay] = []

    async def make(handler: Handler) -> FakeRelay:
        relay = FakeRelay(handler)
        await relay.start()
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        await relay.stop()


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true (bounded; tests never wait unbounded)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
