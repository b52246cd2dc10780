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


# ---- issue 12 / issue 8 finding 6 ---------------------------------------------------------

import re  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from appliance.config import (  # noqa: E402
    Config,
    Source,
    describe,
    format_value,
    load_config_with_sources,
    options,
    parse_address,
    unknown_variables,
    with_bound_ports,
)

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_option_has_a_docstring() -> None:
    missing = [o.key for o in options() if len(o.doc) < 10]
    assert missing == []


def test_reference_lists_every_option_with_variable_and_default() -> None:
    """docs/configuration.md cannot drift: each option has a row naming its TOML key, its
    environment variable and its default, under its section's heading."""
    text = REFERENCE.read_text()
    sections = re.split(r"^### ", text, flags=re.M)
    by_heading = {s.splitlines()[0].strip("` []"): s for s in sections[1:]}
    problems = []
    for o in options():
        section, _, name = o.key.rpartition(".")
        body = by_heading.get(section or "top level", "")
        row = f"| `{name}` | `{o.env}` | `{format_value(o.default, o.key)}` |"
        if row not in body:
            problems.append(row)
    assert problems == [], "add these rows to docs/configuration.md:\n" + "\n".join(problems)


def test_env_value_errors_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"HEARTH_HTTP_PORT": "abc", "HEARTH_DATA_DIR": str(tmp_path)})
    assert str(info.value) == ("http.port: expected integer, got 'abc' "
                               "(from environment variable HEARTH_HTTP_PORT)")
    with pytest.raises(ConfigError) as info:
        load_config(environ={"HEARTH_HTTP_PORT": "70000", "HEARTH_DATA_DIR": str(tmp_path)})
    assert str(info.value) == ("http.port: port out of range: 70000 (0..65535) "
                               "(from environment variable HEARTH_HTTP_PORT)")


def test_flag_and_file_errors_say_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"HEARTH_DATA_DIR": str(tmp_path)},
                    overrides={"hls": {"window": 2}}, flag_names={"hls.window": "--window"})
    assert str(info.value) == ("hls.window: must be between 3 and 100 segments, got 2 "
                               "(from the command line --window)")
    f = tmp_path / "h.toml"
    f.write_text("[http]\nprot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, environ={"HEARTH_DATA_DIR": str(tmp_path)})
    assert str(info.value) == f"http.prot: unknown option (did you mean http.port?) (in {f})"


def test_misspelt_variables_are_reported_with_a_suggestion() -> None:
    warnings: list[str] = []
    env = {"HEARTH_HTTP_PROT": "8081", "HEARTH_DATADIR": "/x", "HEARTH_ZZZ": "1",
           "HEARTH_HTTP_PORT": "8082", "HEARTH_CONFIG": "/nonexistent", "HOME": "/root"}
    c = load_config(environ=env, warn=warnings.append)
    assert c.http.port == 8082
    assert warnings == [
        "ignoring unknown environment variable HEARTH_DATADIR (did you mean HEARTH_DATA_DIR?)",
        "ignoring unknown environment variable HEARTH_HTTP_PROT (did you mean "
        "HEARTH_HTTP_PORT?)",
        "ignoring unknown environment variable HEARTH_ZZZ",
    ]
    assert unknown_variables({"HEARTH_PIP_ARGS": "", "HEARTH_NOSTR_RELAY_VENV": ""}) == []


def test_sources_say_where_each_value_came_from(tmp_path: Path) -> None:
    f = tmp_path / "h.toml"
    f.write_text("[hls]\nwindow = 8\n")
    config, sources = load_config_with_sources(
        f, environ={"HEARTH_HTTP_PORT": "8081", "HEARTH_DATA_DIR": str(tmp_path)},
        overrides={"rtmp": {"port": 1936}}, flag_names={"rtmp.port": "--rtmp"})
    rows = {key: (value, str(src)) for key, value, src in describe(config, sources)}
    assert rows["hls.window"] == ("8", f"file {f}")
    assert rows["http.port"] == ("8081", "env HEARTH_HTTP_PORT")
    assert rows["rtmp.port"] == ("1936", "flag --rtmp")
    assert rows["hls.segment_target"] == ("2.0", "default")
    assert rows["data_dir"] == (f'"{tmp_path}"', "env HEARTH_DATA_DIR")
    assert rows["admin.socket_mode"] == ("0o600", "default")
    assert len(rows) == len(options())


@pytest.mark.parametrize("text, expected", [
    ("8081", ("0.0.0.0", 8081)),
    (" 8081 ", ("0.0.0.0", 8081)),
    (":8081", ("0.0.0.0", 8081)),
    ("127.0.0.1:1935", ("127.0.0.1", 1935)),
    ("[::1]:8080", ("::1", 8080)),
    ("[::]:0", ("::", 0)),
    ("live.example.org:80", ("live.example.org", 80)),
])
def test_parse_address_accepts_a_bare_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", ":", "abc", "80x", "::1:80", "host:", "1:2:3", "65536",
                                  "-1", "1.5", "[::1]", "99999999999999999999",
                                  "\uff18\uff10\uff18\uff10"])  # fullwidth digits
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


@given(st.text(max_size=40))
def test_parse_address_raises_only_value_error(text: str) -> None:
    try:
        host, port = parse_address(text)
    except ValueError:
        return
    assert 0 <= port <= 65535 and isinstance(host, str)


_ENV_NAMES = [o.env for o in options()]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(_ENV_NAMES), st.text(max_size=30), max_size=6))
def test_any_environment_gives_a_config_or_a_config_error(env: dict[str, str]) -> None:
    """Truncated, oversized or hostile values in any HEARTH_* variable: a ConfigError that
    names the option and the variable, never another exception."""
    env = {k: v.replace("\x00", "") for k, v in env.items()}
    env.setdefault("HEARTH_DATA_DIR", "/tmp/hearth-test")
    try:
        config = load_config(environ=env)
    except ConfigError as exc:
        assert exc.key and (exc.source is None or exc.source.origin in ("env", "default"))
        if exc.source is not None and exc.source.origin == "env":
            assert exc.source.detail in env
        return
    assert isinstance(config, Config)


_toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["data_dir", "http", "rtmp", "hls", "webrtc", "admin",
                                        "nostr", "log_level", "bogus"]),
                       _toml_values, max_size=4))
def test_any_overrides_give_a_config_or_a_config_error(data: dict[str, object]) -> None:
    try:
        load_config(environ={"HEARTH_DATA_DIR": "/tmp/hearth-test"}, overrides=data)
    except ConfigError as exc:
        assert exc.key
    except TypeError:
        pytest.fail("a non-ConfigError escaped")


def test_bound_ports_make_the_one_config() -> None:
    c = load_config(environ={"HEARTH_DATA_DIR": "/tmp/x", "HEARTH_HTTP_PORT": "0",
                             "HEARTH_RTMP_PORT": "0", "HEARTH_HTTP_HOST": "127.0.0.1"})
    bound = with_bound_ports(c, http_port=41234, rtmp_port=41235)
    assert bound.http.port == 41234 and bound.rtmp.port == 41235
    assert bound.public_base_url == "http://127.0.0.1:41234"
    assert bound.rtmp_url == "rtmp://127.0.0.1:41235/live"
    assert c.http.port == 0  # frozen: the loaded config is never patched


@pytest.mark.parametrize("env, key", [
    ({"HEARTH_RTMP_MAX_CONNECTIONS": "0"}, "rtmp.max_connections"),
    ({"HEARTH_RTMP_IDLE_TIMEOUT": "0"}, "rtmp.idle_timeout"),
    ({"HEARTH_RTMP_APP": "li/ve"}, "rtmp.app"),
    ({"HEARTH_RTMP_PREAUTH_BYTES_PER_SECOND": "100"}, "rtmp.preauth_bytes_per_second"),
    ({"HEARTH_HTTP_HEADER_TIMEOUT": "0.5"}, "http.header_timeout"),
    ({"HEARTH_HLS_WINDOW": "101"}, "hls.window"),
    ({"HEARTH_HLS_SEGMENT_TARGET": "inf"}, "hls.segment_target"),
    ({"HEARTH_WEBRTC_UDP_PORT_MIN": "5000"}, "webrtc.udp_port_min"),
    ({"HEARTH_WEBRTC_PUBLIC_IP": "not-an-ip"}, "webrtc.public_ip"),
    ({"HEARTH_WEBRTC_OPUS_BITRATE": "1"}, "webrtc.opus_bitrate"),
    ({"HEARTH_ADMIN_SOCKET_MODE": "0o666"}, "admin.socket_mode"),
    ({"HEARTH_NOSTR_OPERATOR_PUBKEY": "npub1nope"}, "nostr.operator_pubkey"),
    ({"HEARTH_NOSTR_REFRESH_INTERVAL": "0"}, "nostr.refresh_interval"),
    ({"HEARTH_LOG_LEVEL": "LOUD"}, "log_level"),
    ({"HEARTH_SHUTDOWN_TIMEOUT": "-1"}, "shutdown_timeout"),
])
def test_each_section_validates_its_own_keys(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"HEARTH_DATA_DIR": "/tmp/x", **env})
    assert info.value.key == key
    assert info.value.source == Source("env", next(iter(env)))
