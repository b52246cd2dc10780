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


# ---- messages asserted verbatim (issue 12) ------------------------------------------------


def test_version() -> None:
    from appliance.cli import app_version

    r = _hearth("--version")
    assert r.returncode == 0 and r.stdout == f"hearth {app_version()}\n"


def test_a_bad_flag_gets_the_subcommands_usage(tmp_path: Path) -> None:
    r = _hearth("channel", "create", "--title", "x", "--bogus", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.startswith("usage: hearth channel create ")
    assert r.stderr.endswith("hearth channel create: error: unrecognized arguments: --bogus\n")
    r = _hearth("broadcast", "list", "--status", "bogus")
    assert r.returncode == 2 and r.stderr.startswith("usage: hearth broadcast list ")
    assert r.stderr.endswith("hearth broadcast list: error: argument --status: invalid choice: "
                             "'bogus' (choose from 'planned', 'live', 'ended')\n")


def test_a_bad_start_time_is_named(tmp_path: Path) -> None:
    r = _hearth("broadcast", "plan", "--channel", "abcdef123456", "--title", "t", "--starts",
                "next friday", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.endswith(
        "hearth broadcast plan: error: argument --starts: expected an ISO 8601 date and time "
        "such as 2026-12-04T20:00+01:00, got 'next friday'\n")


def test_not_running_says_how_to_start(tmp_path: Path) -> None:
    r = _hearth("channel", "list", "--data-dir", str(tmp_path))
    assert r.returncode == 1
    assert r.stderr == (
        f"hearth: Hearth is not running (no admin API at {tmp_path}/admin.sock). Start it with "
        "`hearth serve` or `systemctl start hearth`, or pass --data-dir/--admin-socket.\n")


def test_edit_with_nothing_to_change(tmp_path: Path) -> None:
    r = _hearth("channel", "edit", "abcdef123456", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr == ("hearth channel edit: nothing to change (give --title, --summary, --tag, "
                        "--image, --record/--no-record, --retention-days, --visibility, "
                        "--password/--no-password or --ladder)\n")


def test_edit_ladder_refuses_unknown_presets(tmp_path: Path) -> None:
    r = _hearth("channel", "edit", "abcdef123456", "--ladder", "999p", "--data-dir",
                str(tmp_path))
    assert r.returncode == 2
    assert "argument --ladder: unknown preset '999p'" in r.stderr


def test_every_leaf_command_has_examples_in_its_help() -> None:
    import argparse

    from appliance.cli import build_parser

    missing: list[str] = []

    def walk(p: argparse.ArgumentParser, prefix: list[str]) -> None:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            # block/nostr/recording: their owners' modules
            if (prefix[0] not in ("block", "nostr", "recording")
                    and "examples:" not in p.format_help()):
                missing.append(" ".join(prefix))
            return
        for name, sub in subs[0].choices.items():
            walk(sub, [*prefix, name])

    walk(build_parser(), [])
    assert not missing, missing
