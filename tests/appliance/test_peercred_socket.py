"""The admin socket's SO_PEERCRED check against real processes of other users."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from appliance.api.peercred import PeerPolicy, peercred_middleware, policy_for_socket
from tests.helpers.appliance import short_tmpdir

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not hasattr(os, "setgroups"),
                                reason="needs root to connect as other users")

NOBODY = 65534

CLIENT = """
import os, socket, sys
os.setgroups([int(g) for g in sys.argv[3].split(",") if g])
os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1]))
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[4])
s.sendall(b"GET /v1/ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
print(data.split(b" ", 2)[1].decode())
"""


@pytest.fixture
async def admin_socket() -> AsyncIterator[Path]:
    directory = short_tmpdir()
    os.chmod(directory, 0o755)
    path = directory / "a.sock"
    app = web.Application()

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/v1/ping", ping)
    policy = PeerPolicy(uid=4242, gid=4243)  # service user 4242, operators' group 4243
    app.middlewares.append(peercred_middleware(lambda: policy))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.UnixSite(runner, str(path))
    await site.start()
    os.chmod(path, 0o666)  # file mode wide open: the credential check alone decides
    try:
        yield path
    finally:
        await runner.cleanup()


async def _status_as(path: Path, uid: int, gid: int, groups: str = "") -> str:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(uid), str(gid), groups, str(path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def test_other_users_are_refused_service_user_group_and_root_admitted(
        admin_socket: Path) -> None:
    assert await _status_as(admin_socket, NOBODY, NOBODY) == "403"
    assert await _status_as(admin_socket, 4242, 4242) == "200"  # the service user
    assert await _status_as(admin_socket, 5000, 4243) == "200"  # primary group
    assert await _status_as(admin_socket, 5000, 5000, "4243") == "200"  # supplementary
    assert await _status_as(admin_socket, 0, 0) == "200"


def test_policy_grants_the_group_only_when_the_mode_does(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_bytes(b"")
    os.chmod(path, 0o600)
    assert policy_for_socket(path, uid=7).gid is None
    os.chmod(path, 0o660)
    assert policy_for_socket(path, uid=7).gid == path.stat().st_gid
