"""Bind first, then one configuration; a second ``hearth serve`` says who holds the port."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lifecycle import Appliance
from appliance.listeners import (
    AlreadyRunning,
    PortInUse,
    bind_listeners,
    ensure_not_running,
    probe_admin_socket,
)
from tests.helpers.appliance import ApplianceProcess, free_port, short_tmpdir


def _config(data: Path, **env: str) -> object:
    return load_config(environ={"HEARTH_DATA_DIR": str(data), "HEARTH_HTTP_HOST": "127.0.0.1",
                                "HEARTH_RTMP_HOST": "127.0.0.1", "HEARTH_HTTP_PORT": "0",
                                "HEARTH_RTMP_PORT": "0", **env})


def test_port_zero_is_resolved_before_the_config_is_built(tmp_path: Path) -> None:
    config = _config(tmp_path)
    listeners = bind_listeners(config)  # type: ignore[arg-type]
    try:
        assert listeners.http_port > 0 and listeners.rtmp_port > 0
        assert listeners.http_port != listeners.rtmp_port
    finally:
        listeners.close()


def test_a_port_held_by_another_program_is_named_with_the_way_out(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = _config(tmp_path, HEARTH_HTTP_PORT=str(port))
        with pytest.raises(PortInUse) as info:
            bind_listeners(config)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"HTTP port 127.0.0.1:{port} is already in use by another program. Stop that program, "
        f"or choose another port: hearth serve --http 127.0.0.1:{port + 1} "
        f"(or HEARTH_HTTP_PORT={port + 1}).")


def test_nothing_listening_on_a_stale_socket_means_not_running(tmp_path: Path) -> None:
    path = short_tmpdir() / "admin.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # bound, never listening: what kill -9 leaves behind
    assert probe_admin_socket(path) is None
    assert probe_admin_socket(tmp_path / "absent.sock") is None


async def test_every_service_sees_the_one_bound_config() -> None:
    data = short_tmpdir()
    config = _config(data, HEARTH_NOSTR_RELAYS="")
    async with Appliance(config) as app:  # type: ignore[arg-type]
        assert app.config.http.port == app.http_port > 0
        assert app.config.rtmp.port == app.rtmp_port > 0
        assert app.state is not None and app.state.config is app.config
        assert app.state.nostr is not None and app.state.nostr.config is app.config
        assert app.config.public_base_url == f"http://127.0.0.1:{app.http_port}"
        # The admin socket answers a probe (from another thread: the loop serves it).
        status = await asyncio.to_thread(probe_admin_socket, app.config.admin_socket)
        assert status is not None and status["public_url"] == app.config.public_base_url
        with pytest.raises(AlreadyRunning):
            await asyncio.to_thread(ensure_not_running, app.config)


@pytest.mark.slow
def test_second_serve_says_hearth_is_already_running() -> None:
    """Issue 12: `hearth serve` twice said "address already in use"; now it names the
    running Hearth, and the first one keeps its admin socket."""
    first = ApplianceProcess(short_tmpdir()).start()
    try:
        env = {**first.env(), "HEARTH_LOG_LEVEL": "INFO"}
        same_dir = subprocess.run(
            [sys.executable, "-m", "appliance", "serve", "--data-dir", str(first.data_dir),
             "--http", f"127.0.0.1:{free_port()}", "--rtmp", f"127.0.0.1:{free_port()}",
             "--no-relays"], capture_output=True, text=True, env=env, timeout=60)
        assert same_dir.returncode == 1
        assert same_dir.stderr.splitlines()[-1].startswith(
            f"hearth: cannot start: Hearth is already running at {first.base}, RTMP "
            f"{first.rtmp_base} (admin socket {first.data_dir / 'admin.sock'}). ")
        other_dir = subprocess.run(
            [sys.executable, "-m", "appliance", "serve", "--data-dir", str(short_tmpdir()),
             "--http", f"127.0.0.1:{first.http_port}", "--rtmp", f"127.0.0.1:{free_port()}",
             "--no-relays"], capture_output=True, text=True, env=env, timeout=60)
        assert other_dir.returncode == 1
        assert other_dir.stderr.splitlines()[-1] == (
            f"hearth: cannot start: Hearth is already running on port {first.http_port} "
            f"(HTTP) with another data dir. Stop it first, or give this one other ports: "
            f"--http 127.0.0.1:{first.http_port + 1} "
            f"(or HEARTH_HTTP_PORT={first.http_port + 1}).")
        assert first.cli("status").returncode == 0  # still reachable: socket not stolen
    finally:
        first.stop()


def test_a_listener_that_does_not_answer_still_counts_as_running() -> None:
    """A hung or busy Hearth keeps its socket: connect succeeds, no answer in time."""
    path = short_tmpdir() / "admin.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        s.listen()
        assert probe_admin_socket(path, timeout=0.2) == {}
