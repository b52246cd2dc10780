"""`hearth config show`, bare ports and configuration messages, asserted verbatim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from appliance.config import options


def _hearth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True,
                          text=True, timeout=60, env=full_env)


def test_config_show_says_where_each_value_came_from(tmp_path: Path) -> None:
    toml = tmp_path / "hearth.toml"
    toml.write_text("[hls]\nwindow = 8\n")
    r = _hearth("config", "show", "--config", str(toml), "--rtmp", "1936", "--json",
                env={"HEARTH_HTTP_PORT": "8081", "HEARTH_DATA_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    rows = {row["key"]: row for row in json.loads(r.stdout)}
    assert len(rows) == len(options())
    assert rows["http.port"] == {"key": "http.port", "value": "8081", "source": "env",
                                 "from": "HEARTH_HTTP_PORT"}
    assert rows["rtmp.port"] == {"key": "rtmp.port", "value": "1936", "source": "flag",
                                 "from": "--rtmp"}
    assert rows["hls.window"] == {"key": "hls.window", "value": "8", "source": "file",
                                  "from": str(toml)}
    assert rows["hls.part_target"]["source"] == "default"
    r = _hearth("config", "show", env={"HEARTH_DATA_DIR": str(tmp_path),
                                       "HEARTH_HTTP_PORT": "8081"})
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("http.port "))
    assert line.split() == ["http.port", "8081", "env", "HEARTH_HTTP_PORT"]


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    r = _hearth("serve", "--data-dir", str(tmp_path), env={"HEARTH_HTTP_PORT": "abc"})
    assert r.returncode == 2
    assert r.stderr == ("hearth: configuration error: http.port: expected integer, got 'abc' "
                        "(from environment variable HEARTH_HTTP_PORT)\n")


def test_misspelt_variable_is_a_warning_with_a_suggestion(tmp_path: Path) -> None:
    r = _hearth("config", "show", env={"HEARTH_DATA_DIR": str(tmp_path),
                                       "HEARTH_HTTP_PROT": "8081"})
    assert r.returncode == 0
    assert r.stderr == ("hearth: warning: ignoring unknown environment variable "
                        "HEARTH_HTTP_PROT (did you mean HEARTH_HTTP_PORT?)\n")


def test_bare_port_flag_is_accepted_and_a_bad_one_explained(tmp_path: Path) -> None:
    r = _hearth("config", "show", "--http", "8081", "--json",
                env={"HEARTH_DATA_DIR": str(tmp_path)})
    rows = {row["key"]: row["value"] for row in json.loads(r.stdout)}
    assert rows["http.port"] == "8081" and rows["http.host"] == '"0.0.0.0"'
    r = _hearth("serve", "--http", "80x", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == (
        "hearth serve: error: argument --http: expected PORT or HOST:PORT "
        "(e.g. 8081 or 0.0.0.0:8081), got '80x'")
