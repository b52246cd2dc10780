"""The command line's error paths: clear messages and exit codes, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _hearth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True,
                          text=True, timeout=60, env=full_env)


def test_client_command_without_a_running_appliance(tmp_path: Path) -> None:
    r = _hearth("stream", "list", "--data-dir", str(tmp_path))
    assert r.returncode == 1
    assert "Hearth is not running" in r.stderr and "Traceback" not in r.stderr


def test_bad_flags_and_config_are_reported(tmp_path: Path) -> None:
    r = _hearth("serve", "--http", "nonsense", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = _hearth("serve", "--data-dir", str(tmp_path), env={"HEARTH_HLS_WINDOW": "1"})
    assert r.returncode == 2 and "hls.window" in r.stderr


def test_unreadable_operator_key_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "op.key").write_text("garbage\n")
    r = _hearth("serve", "--data-dir", str(tmp_path), "--http", "127.0.0.1:0",
                "--rtmp", "127.0.0.1:0", env={"HEARTH_NOSTR_OPERATOR_KEY_FILE": "op.key"})
    assert r.returncode == 2
    assert "nostr.operator_key_file" in r.stderr and "Traceback" not in r.stderr
