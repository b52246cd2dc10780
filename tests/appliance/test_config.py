"""Configuration: defaults, TOML, HEARTH_* environment, flags, and errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config


def test_defaults_work_with_no_file(tmp_path: Path) -> None:
    c = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
    assert c.http.port == 8080 and c.rtmp.port == 1935 and c.hls.segment_target == 2.0
    assert c.nostr.relays == ()  # no relay a test could try to reach
    assert c.data_dir == str(tmp_path)
    assert c.admin_socket == tmp_path / "admin.sock"
    assert c.admin.socket_mode == 0o600


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "hearth.toml"
    f.write_text('data_dir = "/srv/h"\n[http]\nport = 9000\npublic_url = "https://x.org"\n'
                 '[hls]\nsegment_target = 4\n[nostr]\nrelays = ["wss://r.example"]\n')
    env = {"HEARTH_HLS_SEGMENT_TARGET": "3", "HEARTH_RTMP_PORT": "1936"}
    c = load_config(f, environ=env, overrides={"rtmp": {"port": 1937}})
    assert c.data_dir == "/srv/h" and c.http.port == 9000
    assert c.hls.segment_target == 3.0 and c.rtmp.port == 1937
    assert c.nostr.relays == ("wss://r.example",)
    assert c.public_base_url == "https://x.org"
    assert c.rtmp_url == "rtmp://x.org:1937/live"


def test_hearth_config_env_missing_file_means_no_file(tmp_path: Path) -> None:
    c = load_config(environ={"HEARTH_CONFIG": str(tmp_path / "absent.toml"),
                             "HEARTH_DATA_DIR": str(tmp_path)})
    assert c.http.port == 8080


def test_runtime_directory_holds_the_socket(tmp_path: Path) -> None:
    import os

    os.environ["RUNTIME_DIRECTORY"] = "/run/hearth"
    try:
        c = load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)})
        assert str(c.admin_socket) == "/run/hearth/admin.sock"
    finally:
        del os.environ["RUNTIME_DIRECTORY"]


@pytest.mark.parametrize("toml, key", [
    ("[http]\nport = 70000\n", "http.port"),
    ("[http]\nport = \"eighty\"\n", "http.port"),
    ("[http]\nbogus = 1\n", "http.bogus"),
    ("http = 5\n", "http"),
    ("[hls]\npart_target = 5.0\n", "hls.part_target"),
    ("[nostr]\nrelays = [\"http://not-ws\"]\n", "nostr.relays"),
    ("[admin]\nsocket_mode = 0o666\n", "admin.socket_mode"),
    ("[http]\npublic_url = \"ftp://x\"\n", "http.public_url"),
    ("this is not toml", "config"),
])
def test_errors_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(f, environ={"HEARTH_DATA_DIR": str(tmp_path)})
    assert info.value.key == key


def test_env_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rtmp.grace_seconds"):
        load_config(environ={"HEARTH_RTMP_GRACE_SECONDS": "soon",
                             "HEARTH_DATA_DIR": str(tmp_path)})
