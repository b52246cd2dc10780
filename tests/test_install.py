"""install.sh, the systemd unit and the helper scripts.

The per-user install test is offline and quick: it pre-creates the target venv with a .pth
file that points at *this* interpreter's site-packages, so install.sh reuses that venv, pip
sees every runtime dependency (and setuptools/wheel for the build) as already installed, and
``HEARTH_PIP_ARGS="--no-index --no-deps --no-build-isolation"`` keeps pip off the network.
What gets tested is exactly install.sh's own work: venv reuse, a non-editable build of the
checkout, the ~/.local/bin symlink, the 0700 data dir, the printed URLs, and idempotent
re-runs. (If setuptools>=68/wheel are not importable here, it falls back to an isolated
build, which needs PyPI.)
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import shlex
import shutil
import signal
import site
import stat
import subprocess
import sys
import sysconfig
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from tests.helpers.native import compiler_and_headers

REPO = Path(__file__).resolve().parent.parent
INSTALL_SH = REPO / "install.sh"
UNIT = REPO / "systemd" / "hearth.service"
SHELL_SCRIPTS = [INSTALL_SH, REPO / ".ci" / "run", *sorted((REPO / "scripts").glob("*.sh"))]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload,no-any-return]


# --------------------------------------------------------------------------- shell


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_syntax(script: Path) -> None:
    r = run(["bash", "-n", str(script)])
    assert r.returncode == 0, r.stderr


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (scripts/install-test-deps.sh installs it)")
    r = run(["shellcheck", "--severity=style", *map(str, SHELL_SCRIPTS)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_install_help_and_bad_option() -> None:
    r = run(["bash", str(INSTALL_SH), "--help"])
    assert r.returncode == 0
    assert "--no-start" in r.stdout and "HEARTH_PYTHON" in r.stdout
    r = run(["bash", str(INSTALL_SH), "--bogus"])
    assert r.returncode != 0
    assert "unknown option" in r.stderr


def test_install_refuses_old_python(tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\ncase "$2" in *print*) echo 3.9 ;; *) exit 1 ;; esac\n')
    fake.chmod(0o755)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "HEARTH_INSTALL_MODE": "user",
        "HEARTH_PYTHON": str(fake),
    }
    r = run(["bash", str(INSTALL_SH), "--no-start"], env=env)
    assert r.returncode != 0
    assert "needs Python >= 3.11" in r.stderr and "3.9" in r.stderr
    assert not (tmp_path / "home" / ".local" / "share" / "hearth" / "venv").exists()


def test_ci_entry_point() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text and "scripts/test.sh" in text


# --------------------------------------------------------------------------- systemd unit


def read_unit() -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_hardening_settings() -> None:
    svc = read_unit()["Service"]

    def one(key: str) -> str:
        assert key in svc, f"{key}= missing"
        return svc[key][-1]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("WatchdogSec") == "30"
    assert one("Restart") == "always"
    assert one("User") == one("Group") == "hearth"
    assert one("StateDirectory") == "hearth" and one("StateDirectoryMode") == "0700"
    assert one("RuntimeDirectory") == "hearth"
    assert one("UMask") == "0077"
    assert one("CapabilityBoundingSet") == ""
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("LimitNOFILE") == "65536"
    assert "HEARTH_DATA_DIR=/var/lib/hearth" in svc["Environment"]
    # WebRTC (cffi/OpenSSL DTLS) needs W+X mappings: docs/threat-model.md §service.
    assert "MemoryDenyWriteExecute" not in svc
    assert set(one("RestrictAddressFamilies").split()) >= {"AF_UNIX", "AF_INET", "AF_INET6"}
    # install.sh puts the venv where the unit expects it.
    exe = one("ExecStart").split()[0]
    assert exe == "/opt/hearth/venv/bin/hearth"
    assert "/opt/hearth" in INSTALL_SH.read_text()


def test_unit_parses_as_ini() -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(UNIT.read_text())
    assert cp.get("Install", "WantedBy") == "multi-user.target"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    # The real ExecStart binary does not exist outside an installed system: point it at
    # /bin/true so verify checks everything else.
    text = re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", UNIT.read_text())
    unit = tmp_path / "hearth.service"
    unit.write_text(text)
    r = run(["systemd-analyze", "verify", str(unit)], cwd=tmp_path)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if "hearth.service" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_systemd_security_score(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)], cwd=tmp_path)
    m = re.search(r"Overall exposure level for hearth\.service: (\d+\.\d+)", r.stdout + r.stderr)
    if m is None:
        pytest.skip(f"systemd-analyze security --offline unsupported: {r.stderr.strip()[:200]}")
    # 1.4 when written; the reference's examples are 1.1-1.6. Guard against regressions.
    assert float(m.group(1)) <= 2.0, r.stdout


# --------------------------------------------------------------------------- per-user install


def _can_build_offline() -> bool:
    try:
        st = tuple(int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    if st < (68, 0):
        return False
    if st >= (70, 1):
        return True  # bdist_wheel is built in
    try:
        version("wheel")
    except PackageNotFoundError:
        return False
    return True


def _seed_venv(venv: Path) -> None:
    """A venv whose sys.path also sees this interpreter's site-packages (deps, pip, setuptools)."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    ours = {
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        *site.getsitepackages(),
    }
    Path(r.stdout.strip(), "_hearth_test_parent_site.pth").write_text(
        "\n".join(sorted(ours)) + "\n"
    )


@pytest.mark.slow
def test_per_user_install_and_upgrade(tmp_path: Path) -> None:
    if not (REPO / "appliance" / "cli.py").exists():
        pytest.skip("appliance/cli.py (the console script target) does not exist yet")
    home = tmp_path / "home"
    xdg = tmp_path / "xdg"
    base = xdg / "hearth"
    venv = base / "venv"
    home.mkdir()
    offline = _can_build_offline()
    _seed_venv(venv)

    env = {
        "PATH": f"{home / '.local' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "XDG_DATA_HOME": str(xdg),
        "TMPDIR": str(tmp_path),
        "HEARTH_INSTALL_MODE": "user",
        "HEARTH_PYTHON": sys.executable,
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "HEARTH_PIP_ARGS": "--no-index --no-deps --no-build-isolation" if offline else "--no-deps",
    }
    r = run(["bash", str(INSTALL_SH), "--no-start"], env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "reusing virtualenv" in out
    assert re.search(r"rtmp://\S+:1935/live", out), out
    assert re.search(r"http://\S+:8080/", out), out
    assert "hearth stream create" in out
    assert "starting hearth serve" not in out  # --no-start
    # Where a compiler and Python's headers exist, pip built the C chunk parser
    # (media/rtmp/_chunks.c) into the venv, and the installer says which parser runs.
    if compiler_and_headers():
        assert "RTMP chunk parser: C" in out, out
        # ... and mypyc compiled the ingest path, which the installed venv runs (media/accel.py)
        assert "ingest path: compiled" in out, out

    link = home / ".local" / "bin" / "hearth"
    assert link.is_symlink() and link.resolve() == (venv / "bin" / "hearth").resolve()
    assert stat.S_IMODE(base.stat().st_mode) == 0o700

    # Installed non-editable: the package comes from the new venv, not from the checkout.
    r = run([str(venv / "bin" / "python"), "-c", "import appliance; print(appliance.__file__)"],
            env=env, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(venv), r.stdout

    r = run([str(link), "--help"], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "serve" in r.stdout

    # Re-running upgrades in place and keeps data.
    keep = base / "keep-me.db"
    keep.write_text("data")
    # A port chosen in the config file is what the printed URLs (and the health probe) use.
    (home / ".config" / "hearth").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "hearth" / "hearth.toml").write_text("[http]\nport = 8099\n")
    r = run(["bash", str(INSTALL_SH), "--no-start"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert keep.read_text() == "data"
    assert re.search(r"http://\S+:8099/", r.stdout), r.stdout
    assert stat.S_IMODE(base.stat().st_mode) == 0o700


# --------------------------------------------------------------------------- issue 12 journeys

STUB_SYSTEMCTL = r"""#!/usr/bin/env bash
# A stand-in for `systemctl --user`: records its arguments and runs the installed unit's
# ExecStart (with its Environment= and EnvironmentFile= settings) as the "service".
echo "$*" >>"$STUB_LOG"
[ "${1:-}" = --user ] || exit 1
shift
unit="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/hearth.service"
pidf="$STUB_STATE/service.pid"
alive() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
stop() {
    if alive; then
        pid=$(cat "$pidf")
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$pidf"
}
start() {
    (
        while IFS= read -r line; do
            case "$line" in
                Environment=*) export "${line#Environment=}" ;;
                EnvironmentFile=*)
                    f=${line#EnvironmentFile=}; f=${f#-}
                    if [ -f "$f" ]; then set -a; . "$f"; set +a; fi ;;
                ExecStart=*) cmd=${line#ExecStart=} ;;
            esac
        done <"$unit"
        exec $cmd >>"$STUB_STATE/service.log" 2>&1 </dev/null
    ) &
    echo $! >"$pidf"
}
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
case "${1:-}" in
    show-environment) echo "HOME=$HOME" ;;
    is-active) alive || exit 3 ;;
    start | restart) stop; start ;;
    stop) stop ;;
esac
exit 0
"""


def _user_env(root: Path, **extra: str) -> dict[str, str]:
    """A fresh user's environment: ~/.local/bin NOT on PATH, no user systemd."""
    home = root / "home"
    home.mkdir(exist_ok=True)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {
        "PATH": path, "HOME": str(home), "XDG_DATA_HOME": str(root / "d"),
        "XDG_CONFIG_HOME": str(root / "c"), "TMPDIR": str(root), "LANG": "C.UTF-8",
        "HEARTH_INSTALL_MODE": "user", "HEARTH_PYTHON": sys.executable,
        "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "HEARTH_PIP_ARGS": ("--no-index --no-deps --no-build-isolation"
                            if _can_build_offline() else "--no-deps"),
    }
    env.update(extra)
    return env


def _healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.mark.slow
def test_per_user_background_upgrade_stop_and_uninstall() -> None:
    """Issue 12: PATH advice, a background server with a log file, re-running install.sh
    while it runs (it is stopped, upgraded and started again on the same ports, data kept),
    a server in another terminal named instead of "address already in use", the installed
    `hearth` and `hearth tui` working, and --uninstall keeping data unless --purge."""
    from tests.helpers.appliance import free_port, short_tmpdir

    root = short_tmpdir()  # the admin socket path must fit in 108 bytes
    http, rtmp = free_port(), free_port()
    env = _user_env(root, HEARTH_HTTP_PORT=str(http), HEARTH_RTMP_PORT=str(rtmp))
    base, conf = root / "d" / "hearth", root / "c" / "hearth"
    link = root / "home" / ".local" / "bin" / "hearth"
    _seed_venv(base / "venv")
    started: list[subprocess.Popen[bytes]] = []
    try:
        r = run(["bash", str(INSTALL_SH), "--background"], env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert '    export PATH="$HOME/.local/bin:$PATH"\n' in r.stderr
        assert f"Until then, run it as: {link}\n" in r.stderr
        assert "Running in the background (pid " in r.stdout
        assert f"Log:  tail -f {base / 'hearth.log'}" in r.stdout
        assert "http://" in r.stdout and f":{http}/" in r.stdout
        pid1 = int((base / "hearth.pid").read_text())
        assert _healthy(http)
        assert (conf / "hearth.env").read_text().splitlines()[1:] == [
            f"HEARTH_HTTP_PORT={http}", f"HEARTH_RTMP_PORT={rtmp}"]

        # The installed CLI reaches it (socket found in the data dir by itself).
        user_env = {k: v for k, v in env.items() if not k.startswith(("HEARTH_", "PIP_"))}
        made = run([str(link), "stream", "create", "--title", "Install journey", "--json"],
                   env=user_env, cwd=root)
        assert made.returncode == 0, made.stderr
        _tui_shows(link, user_env, "Install journey")

        # Re-run while it runs, without the port variables: saved ports, same data.
        env2 = {k: v for k, v in env.items() if k not in ("HEARTH_HTTP_PORT", "HEARTH_RTMP_PORT")}
        r = run(["bash", str(INSTALL_SH)], env=env2)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"stopping the background Hearth (pid {pid1})" in r.stdout
        pid2 = int((base / "hearth.pid").read_text())
        assert pid2 != pid1 and _healthy(http)
        listed = run([str(link), "stream", "list"], env=user_env, cwd=root)
        assert "Install journey" in listed.stdout, listed.stdout + listed.stderr

        r = run(["bash", str(INSTALL_SH), "--stop"], env=env2)
        assert r.returncode == 0 and "stopped" in r.stdout, r.stdout + r.stderr
        assert not _healthy(http)
        r = run(["bash", str(INSTALL_SH), "--stop"], env=env2)
        assert "Hearth is not running" in r.stdout

        # A server in another terminal: named, with what to do.
        proc = subprocess.Popen([str(link), "serve", "--http", f"127.0.0.1:{http}", "--rtmp",
                                 f"127.0.0.1:{rtmp}", "--no-relays"], env=user_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 30
        while not _healthy(http) and time.monotonic() < deadline:
            time.sleep(0.2)
        r = run(["bash", str(INSTALL_SH)], env=env2)
        assert r.returncode != 0
        assert ("error: Hearth is already running in another terminal (admin socket "
                f"{base / 'admin.sock'}). Stop it there (Ctrl-C)") in r.stderr
        r = run(["bash", str(INSTALL_SH), "--uninstall"], env=env2)
        assert r.returncode != 0 and "Hearth still runs in another terminal" in r.stderr
        proc.terminate()
        proc.wait(30)

        r = run(["bash", str(INSTALL_SH), "--uninstall"], env=env2)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not link.exists() and not (base / "venv").exists()
        assert (base / "hearth.db").exists() and (conf / "hearth.env").exists()
        assert f"Kept your data in {base}" in r.stdout
        r = run(["bash", str(INSTALL_SH), "--uninstall", "--purge"], env=env2)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not base.exists() and not conf.exists()
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        pidfile = base / "hearth.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def _tui_shows(link: Path, env: dict[str, str], title: str) -> None:
    """The installed `hearth tui` in tmux at 80×24 shows the stream and the keyframe column."""
    tmux = shutil.which("tmux")
    if tmux is None:
        return
    session = f"hearth-install-{os.getpid()}"
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    f"env -i {envs} {link} tui"], check=True)
    try:
        screen = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            screen = subprocess.run([tmux, "capture-pane", "-p", "-t", session],
                                    capture_output=True, text=True).stdout
            if title in screen and "Keyframe" in screen:
                break
            time.sleep(0.5)
        assert title in screen and "Keyframe" in screen, screen
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True)


@pytest.mark.slow
def test_per_user_service_with_systemctl_user() -> None:
    """Where `systemctl --user` works, the per-user install is a user service: the unit runs
    the installed binary with the data dir and saved ports, a re-run restarts it on the new
    version, and --uninstall disables and removes it, keeping the data."""
    from tests.helpers.appliance import free_port, short_tmpdir

    root = short_tmpdir()
    stub = root / "stub"
    stub.mkdir()
    (stub / "systemctl").write_text(STUB_SYSTEMCTL)
    (stub / "systemctl").chmod(0o755)
    (stub / "journalctl").write_text("#!/bin/sh\nexit 0\n")
    (stub / "journalctl").chmod(0o755)
    state = root / "state"
    state.mkdir()
    http, rtmp = free_port(), free_port()
    env = _user_env(root, HEARTH_HTTP_PORT=str(http), HEARTH_RTMP_PORT=str(rtmp),
                    XDG_RUNTIME_DIR=str(state), STUB_LOG=str(state / "calls"),
                    STUB_STATE=str(state))
    env["PATH"] = f"{stub}:{env['PATH']}"
    base = root / "d" / "hearth"
    unit = root / "c" / "systemd" / "user" / "hearth.service"
    _seed_venv(base / "venv")
    try:
        r = run(["bash", str(INSTALL_SH)], env=env)
        assert r.returncode == 0, r.stdout + r.stderr + (state / "service.log").read_text()
        text = unit.read_text()
        assert f"ExecStart={base / 'venv' / 'bin' / 'hearth'} serve\n" in text
        assert f"Environment=HEARTH_DATA_DIR={base}\n" in text
        assert "@" not in text.replace("@…@", "")
        assert "systemctl --user status hearth" in r.stdout
        assert "loginctl enable-linger" in r.stdout
        calls = (state / "calls").read_text().splitlines()
        assert calls[-3:] == ["--user daemon-reload", "--user enable --quiet hearth.service",
                              "--user restart hearth.service"]
        assert _healthy(http)
        first = (state / "service.pid").read_text()

        r = run(["bash", str(INSTALL_SH)], env={k: v for k, v in env.items()
                                              if k not in ("HEARTH_HTTP_PORT",
                                                           "HEARTH_RTMP_PORT")})
        # (A failure here with "did not become healthy" is most likely another process taking
        # the free port between free_port() and the bind: the service log says.)
        assert r.returncode == 0, r.stdout + r.stderr + (state / "service.log").read_text()
        assert "restarted on the new version after the upgrade" in r.stdout
        assert (state / "service.pid").read_text() != first and _healthy(http)

        r = run(["bash", str(INSTALL_SH), "--uninstall"], env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        calls = (state / "calls").read_text().splitlines()
        assert "--user stop hearth.service" in calls
        assert "--user disable --quiet hearth.service" in calls
        assert not unit.exists() and not _healthy(http)
        assert (base / "hearth.db").exists()
    finally:
        pidfile = state / "service.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def test_user_unit_template() -> None:
    """The user unit install.sh fills in: notify service of the installed binary, keeping the
    admin socket in the data dir (no RuntimeDirectory=: the CLI finds it there)."""
    text = (REPO / "systemd" / "hearth-user.service").read_text()
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(text)
    assert cp.get("Service", "ExecStart") == "@VENV@/bin/hearth serve"
    assert cp.get("Service", "Type") == "notify"
    assert cp.get("Install", "WantedBy") == "default.target"
    assert "RuntimeDirectory" not in cp["Service"]
    assert "HEARTH_DATA_DIR=@DATA@" in text and "@CONFIG_DIR@/hearth.env" in text


def test_uninstall_refuses_purge_without_uninstall() -> None:
    r = run(["bash", str(INSTALL_SH), "--purge"])
    assert r.returncode != 0 and "--purge only goes with --uninstall" in r.stderr
