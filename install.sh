#!/usr/bin/env bash
# Hearth installer. Idempotent: re-running it upgrades in place and keeps all data.
#
#   sudo ./install.sh          system install: user "hearth", /opt/hearth/venv,
#                              systemd unit "hearth.service", data in /var/lib/hearth
#   ./install.sh               (not root, or no systemd) per-user install in
#                              ${XDG_DATA_HOME:-~/.local/share}/hearth with `hearth` linked
#                              into ~/.local/bin; runs as a systemd *user* service where
#                              `systemctl --user` works, else `hearth serve` in the foreground
#                              (or in the background with --background)
#
# Options:
#   --no-start     install only; do not start/restart the service or run `hearth serve`
#   --domain NAME  (system install) serve https://NAME through Caddy (Debian package) with
#                  automatic certificates; Hearth then listens on loopback only and its
#                  public URL is https://NAME. Ports 80 and 443 must reach this host.
#   --print-caddyfile  print the Caddyfile --domain would write, and exit
#   --user         force a per-user install (same as HEARTH_INSTALL_MODE=user)
#   --system       force a system install (same as HEARTH_INSTALL_MODE=system)
#   --foreground   per-user: run `hearth serve` in this terminal even if a user service works
#   --background   per-user without a user service: run `hearth serve` in the background,
#                  logging to <data dir>/hearth.log (pid in <data dir>/hearth.pid)
#   --stop         stop the per-user background server or user service, then exit
#   --uninstall    remove Hearth (service, venv, `hearth` link); keeps data and config
#   --purge        with --uninstall: also delete the data (streams, keys, recordings) and
#                  config; for a system install also the "hearth" user and group
#   -h, --help     this text
#
# Re-running install.sh while Hearth runs upgrades it: a service is restarted on the new
# version, a --background server is stopped first and started again; a server running in
# another terminal must be stopped there first (the script says so).
#
# Environment:
#   HEARTH_PYTHON        interpreter to build the venv from (default: python3; must be >= 3.11)
#   HEARTH_INSTALL_MODE  auto (default) | user | system
#   HEARTH_PIP_ARGS      extra arguments for `pip install`, e.g. for an offline mirror:
#                        "--no-index --find-links /srv/wheels"
#   HEARTH_HTTP_PORT     HTTP port (default 8080): passed on to the installed service and
#                        used to probe /healthz and print the URLs
#   HEARTH_RTMP_PORT     RTMP port (default 1935): likewise
set -euo pipefail

readonly SYSTEM_PREFIX=/opt/hearth
readonly SYSTEM_DATA=/var/lib/hearth
readonly SYSTEM_CONF_DIR=/etc/hearth
readonly UNIT_DST=/etc/systemd/system/hearth.service
readonly MIN_PY=3.11

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SRC_DIR
HTTP_PORT=${HEARTH_HTTP_PORT:-8080}
RTMP_PORT=${HEARTH_RTMP_PORT:-1935}
MODE=${HEARTH_INSTALL_MODE:-auto}
START=1
DOMAIN=""
PRINT_CADDYFILE=0
STAGE=""
ACTION=install   # install | uninstall | stop
PURGE=0
RUN_AS=auto      # per-user: auto (user service if possible) | foreground | background

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

cleanup() { if [ -n "$STAGE" ]; then rm -rf "$STAGE"; fi; }
trap cleanup EXIT

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --no-start) START=0 ;;
        --domain) shift; DOMAIN=${1:-} ;;
        --domain=*) DOMAIN=${1#--domain=} ;;
        --print-caddyfile) PRINT_CADDYFILE=1 ;;
        --user) MODE=user ;;
        --system) MODE=system ;;
        --foreground) RUN_AS=foreground ;;
        --background) RUN_AS=background ;;
        --stop) ACTION=stop ;;
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done
if [ "$PURGE" -eq 1 ] && [ "$ACTION" != uninstall ]; then
    die "--purge only goes with --uninstall"
fi

# ---------------------------------------------------------------- helpers

has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# The address other machines on the LAN would use to reach us.
primary_address() {
    local addr=""
    if command -v ip >/dev/null 2>&1; then
        addr=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)
    fi
    if [ -z "$addr" ] && command -v hostname >/dev/null 2>&1; then
        addr=$(hostname -I 2>/dev/null | awk '{print $1}')
    fi
    printf '%s\n' "${addr:-127.0.0.1}"
}

# check_python PY -> exits with a clear message unless PY is a usable Python >= 3.11.
check_python() {
    local py=$1 ver
    command -v "$py" >/dev/null 2>&1 || die "Python interpreter '$py' not found. Install Python >= $MIN_PY (Debian 12: apt-get install python3 python3-venv) or set HEARTH_PYTHON=/path/to/python3.11"
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "'$py' does not run"
    if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        die "Hearth needs Python >= $MIN_PY but '$py' is Python $ver. Install a newer Python (Debian 12 / Ubuntu 24.04 ship one) and/or set HEARTH_PYTHON."
    fi
    say "using $("$py" -c 'import sys; print(sys.executable)') (Python $ver)"
}

has_venv_module() { "$1" -c 'import venv, ensurepip' >/dev/null 2>&1; }

# ensure_venv PY VENV: create the venv, or keep the existing one if its Python still works.
ensure_venv() {
    local py=$1 venv=$2
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys, pip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
        say "reusing virtualenv $venv"
        return
    fi
    if [ -e "$venv" ]; then
        say "recreating broken or outdated virtualenv $venv (data is not stored there)"
        "$py" -m venv --clear "$venv"
    else
        say "creating virtualenv $venv"
        mkdir -p "$(dirname "$venv")"
        "$py" -m venv "$venv"
    fi
}

# Stage a clean copy of the checkout so pip's in-tree build never writes build/ or
# *.egg-info into the source directory (which may belong to another user).
stage_source() {
    STAGE=$(mktemp -d "${TMPDIR:-/tmp}/hearth-src.XXXXXX")
    tar -C "$SRC_DIR" \
        --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
        --exclude=./bench/out --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude=node_modules --exclude=.mypy_cache --exclude=.ruff_cache \
        --exclude=.pytest_cache --exclude=.hypothesis --exclude='*.so' \
        --exclude=./media/_compiled.json \
        -cf - . | tar -C "$STAGE" -xf -
    chmod -R a+rX "$STAGE"
}

pip_install() {
    local venv=$1
    local -a extra=()
    if [ -n "${HEARTH_PIP_ARGS:-}" ]; then
        read -r -a extra <<<"$HEARTH_PIP_ARGS"
    fi
    stage_source
    say "installing Hearth from $SRC_DIR into $venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet \
        --upgrade "${extra[@]}" "$STAGE"
    rm -rf "$STAGE"
    STAGE=""
    [ -x "$venv/bin/hearth" ] || die "pip finished but $venv/bin/hearth is missing"
    say "installed: $("$venv/bin/python" -c 'from importlib.metadata import version; print("hearth", version("hearth"))')"
    say "RTMP chunk parser: $("$venv/bin/python" -c 'from media.rtmp.chunk import NATIVE_CHUNK_READER as n; print("C" if n else "Python (no C compiler at install)")')"
    say "ingest path: $("$venv/bin/python" -c 'import media.accel as a; print(a.DECISION.describe())')"
}

wait_healthz() {
    local py=$1 url="http://127.0.0.1:${HTTP_PORT}/healthz"
    say "waiting for $url"
    "$py" - "$url" <<'PYEOF'
import sys, time, urllib.request
url = sys.argv[1]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
PYEOF
}

print_urls() {
    local host
    host=$(primary_address)
    cat <<EOF

Hearth is installed.
  Watch / discovery page:  http://${host}:${HTTP_PORT}/
  OBS server URL (RTMP):   rtmp://${host}:${RTMP_PORT}/live
  Stream key:              created per stream (see below)
EOF
}

# ---------------------------------------------------------------- HTTPS with Caddy (--domain)
# Caddy terminates TLS (automatic ACME certificates) and proxies everything to Hearth on
# loopback; Hearth trusts Caddy's X-Forwarded-For because it arrives over loopback. Kept in
# its own block: it touches only /etc/caddy and a systemd drop-in for hearth.service.

readonly CADDY_MARKER="# Hearth behind Caddy"
readonly HTTPS_DROPIN=/etc/systemd/system/hearth.service.d/https.conf

# valid_domain NAME: a DNS name (letters, digits, hyphens, dots), optionally :port.
valid_domain() {
    case $1 in *[!A-Za-z0-9.:-]*) return 1 ;; esac # also refuses newlines (sed/Caddyfile injection)
    [ "${#1}" -le 253 ] && printf '%s' "$1" |
        grep -Eq '^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(:[0-9]{1,5})?$'
}

# render_caddyfile DOMAIN UPSTREAM TLS-DIRECTIVE: deploy/Caddyfile.template filled in.
render_caddyfile() {
    local template=$SRC_DIR/deploy/Caddyfile.template
    [ -f "$template" ] || die "missing $template"
    sed -e "s|@DOMAIN@|$1|g" -e "s|@UPSTREAM@|$2|g" -e "s|@TLS@|$3|g" "$template"
}

# Debian's caddy package ships a placeholder Caddyfile serving /usr/share/caddy on :80.
is_stock_caddyfile() { grep -q '/usr/share/caddy' "$1" && ! grep -q "$CADDY_MARKER" "$1"; }

install_caddy() {
    if command -v caddy >/dev/null 2>&1; then
        say "using $(caddy version 2>/dev/null | head -n1) ($(command -v caddy))"
        return
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "--domain needs Caddy: install it (https://caddyserver.com/docs/install) and re-run"
    local -a apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    local candidate
    candidate=$(apt-cache policy caddy 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        "${apt[@]}" update >/dev/null || true
        candidate=$(apt-cache policy caddy 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    fi
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        die "no caddy package in your apt sources (Debian 12 and Ubuntu 24.04 have one); install Caddy from https://caddyserver.com/docs/install and re-run"
    fi
    say "installing caddy $candidate with apt-get"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends caddy >/dev/null
}

setup_https() {
    local domain=$1 caddyfile=/etc/caddy/Caddyfile
    install_caddy
    install -d -m 0755 /etc/caddy
    if [ -f "$caddyfile" ] && ! grep -q "$CADDY_MARKER" "$caddyfile" && ! is_stock_caddyfile "$caddyfile"; then
        caddyfile=/etc/caddy/hearth.caddy
        warn "keeping your own /etc/caddy/Caddyfile; wrote $caddyfile: add the line 'import hearth.caddy' to your Caddyfile and reload caddy"
    fi
    render_caddyfile "$domain" "127.0.0.1:${HTTP_PORT}" "" >"$caddyfile.new"
    mv "$caddyfile.new" "$caddyfile"
    chmod 0644 "$caddyfile"
    if [ "$caddyfile" = /etc/caddy/Caddyfile ]; then
        caddy validate --config "$caddyfile" --adapter caddyfile >/dev/null 2>&1 ||
            die "caddy rejected $caddyfile (see: caddy validate --config $caddyfile)"
    fi
    say "wrote $caddyfile for https://$domain"
    # Hearth: loopback only (viewers come through Caddy), an https public URL (NIP-53
    # streaming tags, JSON URLs), and a per-address connection cap that fits Caddy: every
    # viewer's connection reaches Hearth from Caddy's one loopback address.
    install -d -m 0755 "$(dirname "$HTTPS_DROPIN")"
    {
        echo "# Written by install.sh --domain $domain (re-run it to change; delete this file and"
        echo "# the Caddyfile to go back to plain HTTP on port ${HTTP_PORT})."
        echo "[Service]"
        echo "Environment=HEARTH_HTTP_PUBLIC_URL=https://$domain"
        echo "Environment=HEARTH_HTTP_HOST=127.0.0.1"
        echo "Environment=HEARTH_HTTP_MAX_CONNECTIONS_PER_IP=4096"
    } >"$HTTPS_DROPIN"
    systemctl daemon-reload
    systemctl enable --quiet caddy.service
    systemctl reload-or-restart caddy.service || die "caddy did not start: journalctl -u caddy"
}

print_https() {
    echo
    echo "HTTPS (Caddy, automatic certificates):"
    echo "  Watch / discovery page:  https://$1/"
    echo "  HLS for any player:      https://$1/hls/<stream id>/index.m3u8"
    echo "  OBS server URL (RTMP):   rtmp://${1%%:*}:${RTMP_PORT}/live   (RTMP is not proxied)"
    echo "  Ports 80 and 443 must reach this host, for the certificate (ACME) and for viewers."
}

# ---------------------------------------------------------------- system install

# SRT ingest ([srt] enabled) loads libsrt 1.5 with ctypes; small, and unused while SRT is off.
install_libsrt() {
    command -v apt-get >/dev/null 2>&1 || return 0
    if ldconfig -p 2>/dev/null | grep -q 'libsrt[-a-z]*\.so\.1\.5'; then return 0; fi
    say "installing libsrt1.5-gnutls with apt-get (for SRT ingest)"
    local -a apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install libsrt1.5-gnutls >/dev/null 2>&1 ||
        warn "could not install libsrt1.5-gnutls: SRT ingest stays unavailable (RTMP is unaffected)"
}

# has_c_build PY: a C compiler and PY's headers, so pip builds the C RTMP chunk parser
# (media/rtmp/_chunks.c; ~13 % less CPU per ingest stream). Without them pip warns and Hearth
# uses the same parser in Python.
has_c_build() {
    command -v cc >/dev/null 2>&1 &&
        "$1" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1
}

install_c_build() {
    local py=$1
    command -v apt-get >/dev/null 2>&1 || return 0
    if has_c_build "$py"; then return 0; fi
    say "installing gcc and python3-dev with apt-get (to build the C RTMP chunk parser)"
    local -a apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends gcc libc6-dev python3-dev >/dev/null 2>&1 ||
        warn "could not install gcc/python3-dev: Hearth parses RTMP in Python (the same, a little slower)"
}

install_system() {
    local py=${HEARTH_PYTHON:-/usr/bin/python3}
    local venv=$SYSTEM_PREFIX/venv

    [ "$(id -u)" -eq 0 ] || die "a system install needs root (try: sudo $0, or $0 --user)"
    command -v systemctl >/dev/null 2>&1 || die "a system install needs systemd (try: $0 --user)"
    [ -d /run/systemd/system ] || warn "systemd does not seem to be running (no /run/systemd/system)"
    [ -f "$SRC_DIR/systemd/hearth.service" ] || die "missing $SRC_DIR/systemd/hearth.service"

    if command -v apt-get >/dev/null 2>&1 && { ! command -v "$py" >/dev/null 2>&1 || ! has_venv_module "$py"; }; then
        say "installing python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        local -a apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
        "${apt[@]}" install python3 python3-venv >/dev/null ||
            { "${apt[@]}" update >/dev/null && "${apt[@]}" install python3 python3-venv >/dev/null; }
    fi
    check_python "$py"
    has_venv_module "$py" || die "'$py -m venv' is unavailable; install your distribution's python3-venv package"
    install_libsrt
    install_c_build "$py"

    if ! getent group hearth >/dev/null; then
        say "creating system group hearth"
        groupadd --system hearth
    fi
    if ! getent passwd hearth >/dev/null; then
        say "creating system user hearth"
        useradd --system --gid hearth --home-dir "$SYSTEM_DATA" --no-create-home \
            --shell /usr/sbin/nologin --comment "Hearth live-streaming appliance" hearth
    fi
    # systemd's StateDirectory= creates and chowns it too; keep it private either way.
    install -d -m 0700 -o hearth -g hearth "$SYSTEM_DATA"
    chmod 0700 "$SYSTEM_DATA"

    # Code is owned by root and read-only to the service.
    install -d -m 0755 "$SYSTEM_PREFIX"
    ensure_venv "$py" "$venv"
    pip_install "$venv"
    if [ -f "$SRC_DIR/README.md" ]; then install -m 0644 "$SRC_DIR/README.md" "$SYSTEM_PREFIX/README.md"; fi
    ln -sfn "$venv/bin/hearth" /usr/local/bin/hearth

    # Optional config: never overwritten. The unit points HEARTH_CONFIG at it; a missing
    # file means "defaults".
    install -d -m 0750 -o root -g hearth "$SYSTEM_CONF_DIR"
    # Ports given as HEARTH_HTTP_PORT/HEARTH_RTMP_PORT reach the service through this file.
    load_ports "$SYSTEM_CONF_DIR/hearth.env"
    save_ports "$SYSTEM_CONF_DIR/hearth.env"
    HEARTH_CONFIG="$SYSTEM_CONF_DIR/hearth.toml" HEARTH_DATA_DIR="$SYSTEM_DATA" effective_ports "$venv"
    if [ -f "$SYSTEM_CONF_DIR/hearth.env" ]; then chown root:hearth "$SYSTEM_CONF_DIR/hearth.env"; fi
    if [ -f "$SYSTEM_CONF_DIR/hearth.toml" ]; then
        say "keeping existing $SYSTEM_CONF_DIR/hearth.toml"
    fi

    local unit_changed=1
    if [ -f "$UNIT_DST" ] && cmp -s "$SRC_DIR/systemd/hearth.service" "$UNIT_DST"; then unit_changed=0; fi
    install -m 0644 "$SRC_DIR/systemd/hearth.service" "$UNIT_DST"
    if [ "$unit_changed" -eq 1 ]; then say "installed $UNIT_DST"; fi
    systemctl daemon-reload
    systemctl enable --quiet hearth.service
    if [ -n "$DOMAIN" ]; then setup_https "$DOMAIN"; fi

    if [ "$START" -eq 1 ]; then
        # restart == start when stopped, and picks up the new code on upgrade.
        say "(re)starting hearth.service"
        systemctl restart hearth.service
        if ! wait_healthz "$venv/bin/python"; then
            systemctl --no-pager --lines=0 status hearth.service >&2 || true
            journalctl --no-pager -u hearth.service -n 40 >&2 || true
            die "hearth.service did not become healthy on port ${HTTP_PORT}"
        fi
    else
        say "--no-start: not (re)starting hearth.service"
    fi

    print_urls
    if [ -n "$DOMAIN" ]; then print_https "$DOMAIN"; fi
    cat <<EOF

Next step - create a stream (prints the stream key once):
  sudo -u hearth hearth stream create --title "My first stream"
To use the CLI/TUI without sudo, join the socket group, log in again, then:
  sudo usermod -aG hearth ${SUDO_USER:-YOUR_USER}
  hearth stream create --title "My first stream"     # or: hearth tui
(The CLI finds the service's socket at /run/hearth/admin.sock by itself.)
Service:  systemctl status hearth   |   journalctl -u hearth -f
Config:   $SYSTEM_CONF_DIR/hearth.toml (optional; kept across upgrades; docs/configuration.md)
Ports:    HEARTH_HTTP_PORT=8081 HEARTH_RTMP_PORT=1936 sudo -E ./install.sh (kept in $SYSTEM_CONF_DIR/hearth.env)
Data:     $SYSTEM_DATA (kept across upgrades)
Remove:   sudo ./install.sh --uninstall (keeps data)  |  sudo ./install.sh --uninstall --purge
EOF
}

# ---------------------------------------------------------------- system uninstall

uninstall_system() {
    [ "$(id -u)" -eq 0 ] || die "removing the system install needs root (try: sudo $0 --uninstall)"
    if [ -f "$UNIT_DST" ]; then
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now --quiet hearth.service || true
        fi
        rm -f "$UNIT_DST"
        if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload || true; fi
        say "stopped and removed hearth.service"
    fi
    if [ -L /usr/local/bin/hearth ] && [ "$(readlink /usr/local/bin/hearth)" = "$SYSTEM_PREFIX/venv/bin/hearth" ]; then
        rm -f /usr/local/bin/hearth
    fi
    if [ -d "$SYSTEM_PREFIX" ]; then
        safe_rm "$SYSTEM_PREFIX"
        say "removed $SYSTEM_PREFIX"
    fi
    if [ "$PURGE" -eq 1 ]; then
        rm -rf -- "$SYSTEM_DATA" "$SYSTEM_CONF_DIR"
        if getent passwd hearth >/dev/null; then userdel hearth || true; fi
        if getent group hearth >/dev/null; then groupdel hearth || true; fi
        say "deleted $SYSTEM_DATA, $SYSTEM_CONF_DIR and the hearth user and group"
    else
        cat <<EOF
Hearth is uninstalled. Kept the data in $SYSTEM_DATA, the config in $SYSTEM_CONF_DIR and the
"hearth" user: reinstall with sudo ./install.sh, or delete them with
  sudo ./install.sh --uninstall --purge
EOF
    fi
}

# ---------------------------------------------------------------- per-user install

USER_BASE=${XDG_DATA_HOME:-$HOME/.local/share}/hearth   # platformdirs' data dir: `hearth` finds it
USER_VENV=$USER_BASE/venv
USER_BIN=$HOME/.local/bin
USER_CONF=${XDG_CONFIG_HOME:-$HOME/.config}/hearth
USER_UNIT=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/hearth.service
USER_PID=$USER_BASE/hearth.pid
USER_LOG=$USER_BASE/hearth.log
PORTS_GIVEN=0    # 1 when HEARTH_HTTP_PORT/HEARTH_RTMP_PORT were given now or saved before

# A user systemd instance we can talk to (absent in containers, over plain `su`, ...).
has_user_systemd() {
    command -v systemctl >/dev/null 2>&1 && [ -n "${XDG_RUNTIME_DIR:-}" ] &&
        systemctl --user show-environment >/dev/null 2>&1
}

user_service_active() {
    [ -f "$USER_UNIT" ] && has_user_systemd && systemctl --user is-active --quiet hearth.service
}

# background_pid: print the pid of a server started with --background, if it still runs.
background_pid() {
    local pid
    [ -f "$USER_PID" ] || return 1
    pid=$(cat "$USER_PID" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    # The pid may have been reused by something else since: it must be our hearth.
    if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q hearth; then
        return 1
    fi
    printf '%s\n' "$pid"
}

# socket_answers PATH: something accepts connections on this Unix socket (a running Hearth).
socket_answers() {
    local py=${HEARTH_PYTHON:-python3}
    [ -S "$1" ] || return 1
    command -v "$py" >/dev/null 2>&1 || py=$USER_VENV/bin/python
    "$py" - "$1" <<'PYEOF' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
PYEOF
}

stop_background() {
    local pid _
    pid=$(background_pid) || { rm -f "$USER_PID"; return 1; }
    say "stopping the background Hearth (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "pid $pid did not stop within 25 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$USER_PID"
}

# stop_user: stop whatever install.sh started (user service or background server).
stop_user() {
    local stopped=1
    if user_service_active; then
        say "stopping the user service (systemctl --user stop hearth)"
        systemctl --user stop hearth.service
        stopped=0
    fi
    if background_pid >/dev/null; then
        stop_background
        stopped=0
    fi
    return "$stopped"
}

check_port_number() {
    case "$2" in
        '' | *[!0-9]*) die "$1 must be a port number (got '$2')" ;;
    esac
    [ "$2" -le 65535 ] || die "$1 must be at most 65535 (got '$2')"
}

# Ports: given now (HEARTH_HTTP_PORT=… ./install.sh), else the ones saved by an earlier run.
load_ports() {
    local envfile=$1 saved
    if [ -n "${HEARTH_HTTP_PORT:-}" ] || [ -n "${HEARTH_RTMP_PORT:-}" ]; then
        PORTS_GIVEN=1
    elif [ -f "$envfile" ]; then
        saved=$(sed -n 's/^HEARTH_HTTP_PORT=\([0-9]*\)$/\1/p' "$envfile")
        if [ -n "$saved" ]; then HTTP_PORT=$saved; PORTS_GIVEN=1; fi
        saved=$(sed -n 's/^HEARTH_RTMP_PORT=\([0-9]*\)$/\1/p' "$envfile")
        if [ -n "$saved" ]; then RTMP_PORT=$saved; PORTS_GIVEN=1; fi
    fi
    check_port_number HEARTH_HTTP_PORT "$HTTP_PORT"
    check_port_number HEARTH_RTMP_PORT "$RTMP_PORT"
}

# effective_ports VENV: when no ports were given, ask the installed hearth which ports its
# configuration (e.g. [http] port in hearth.toml) selects, so that the health probe and the
# printed URLs match what it will listen on.
effective_ports() {
    local out
    [ "$PORTS_GIVEN" -eq 0 ] || return 0
    out=$("$1/bin/hearth" config show --json 2>/dev/null | "$1/bin/python" -c '
import json, sys
rows = {row["key"]: row["value"] for row in json.load(sys.stdin)}
print(rows["http.port"], rows["rtmp.port"])') || return 0
    read -r HTTP_PORT RTMP_PORT <<<"$out"
}

# save_ports FILE: keep the chosen ports for the service and for later upgrades.
save_ports() {
    local envfile=$1
    [ "$PORTS_GIVEN" -eq 1 ] || return 0
    mkdir -p "$(dirname "$envfile")"
    printf '# Written by install.sh: the ports given as HEARTH_HTTP_PORT/HEARTH_RTMP_PORT.\nHEARTH_HTTP_PORT=%s\nHEARTH_RTMP_PORT=%s\n' \
        "$HTTP_PORT" "$RTMP_PORT" >"$envfile"
    chmod 0640 "$envfile"
}

# The exact line to add when ~/.local/bin is not on PATH (a fresh shell's PATH often lacks it).
path_advice() {
    case ":$PATH:" in
        *":$USER_BIN:"*) return 0 ;;
    esac
    local later=""
    if [ -f "$HOME/.profile" ] && grep -q '\.local/bin' "$HOME/.profile"; then
        later=" (your ~/.profile adds it from your next login on)"
    fi
    cat >&2 <<EOF

note: $USER_BIN is not on your PATH, so \`hearth\` is not found in this shell$later.
Add this line to ~/.profile (or ~/.bashrc) and open a new terminal:
    export PATH="\$HOME/.local/bin:\$PATH"
Until then, run it as: $USER_BIN/hearth
EOF
}

install_user_unit() {
    [ -f "$SRC_DIR/systemd/hearth-user.service" ] || die "missing $SRC_DIR/systemd/hearth-user.service"
    mkdir -p "$(dirname "$USER_UNIT")"
    sed -e "s|@VENV@|$USER_VENV|g" -e "s|@DATA@|$USER_BASE|g" -e "s|@CONFIG_DIR@|$USER_CONF|g" \
        "$SRC_DIR/systemd/hearth-user.service" >"$USER_UNIT.tmp"
    mv "$USER_UNIT.tmp" "$USER_UNIT"
    say "installed the user service $USER_UNIT"
    systemctl --user daemon-reload
    systemctl --user enable --quiet hearth.service
}

linger_advice() {
    local name
    name=$(id -un)
    if [ -e "/var/lib/systemd/linger/$name" ]; then return 0; fi
    cat <<EOF
The service stops when you log out. To keep it running (and start it at boot):
  loginctl enable-linger $name
EOF
}

start_background() {
    say "starting hearth serve in the background (log: $USER_LOG)"
    # setsid + nohup: the server outlives this script and the terminal it ran in.
    nohup setsid "$USER_VENV/bin/hearth" serve >>"$USER_LOG" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$USER_PID"
}

install_user() {
    local py=${HEARTH_PYTHON:-python3}
    local run=$RUN_AS running_elsewhere=0

    check_python "$py"
    has_venv_module "$py" || die "'$py -m venv' is unavailable. On Debian/Ubuntu: sudo apt-get install python3-venv (or set HEARTH_PYTHON)"
    load_ports "$USER_CONF/hearth.env"

    # What runs now? A service is restarted on the new code after the upgrade; a background
    # server is stopped before its venv changes underneath it; one in another terminal is
    # that terminal's to stop.
    if user_service_active; then
        say "Hearth runs as a user service: it is restarted on the new version after the upgrade"
        if [ "$run" = auto ]; then run=service; fi
    elif background_pid >/dev/null; then
        stop_background
        if [ "$run" = auto ]; then run=background; fi
    elif socket_answers "$USER_BASE/admin.sock"; then
        running_elsewhere=1
        if [ "$START" -eq 1 ]; then
            die "Hearth is already running in another terminal (admin socket $USER_BASE/admin.sock). Stop it there (Ctrl-C), then run ./install.sh again to upgrade and start it; or run ./install.sh --no-start to upgrade only and restart it yourself."
        fi
    fi
    if [ "$run" = auto ]; then
        if has_user_systemd; then run=service; else run=foreground; fi
    fi

    # The data dir (platformdirs' user data dir) holds keys and the database: owner-only.
    mkdir -p "$USER_BASE"
    chmod 0700 "$USER_BASE"
    ensure_venv "$py" "$USER_VENV"
    if [ "$(id -u)" -eq 0 ]; then
        install_c_build "$py"
    elif ! has_c_build "$py"; then
        say "no C compiler or Python headers: RTMP chunks are parsed in Python (for the C parser: sudo apt-get install gcc python3-dev, then run ./install.sh again)"
    fi
    pip_install "$USER_VENV"
    if [ -f "$SRC_DIR/README.md" ]; then install -m 0644 "$SRC_DIR/README.md" "$USER_BASE/README.md"; fi

    mkdir -p "$USER_BIN"
    ln -sfn "$USER_VENV/bin/hearth" "$USER_BIN/hearth"
    say "linked $USER_BIN/hearth"
    mkdir -p "$USER_CONF"
    save_ports "$USER_CONF/hearth.env"
    if [ "$running_elsewhere" -eq 1 ]; then
        warn "Hearth still runs the old version in another terminal: restart it there to use the new one"
    fi
    # Same environment as the user service: the optional config file and the saved ports.
    export HEARTH_CONFIG="$USER_CONF/hearth.toml"
    if [ "$PORTS_GIVEN" -eq 1 ]; then export HEARTH_HTTP_PORT="$HTTP_PORT" HEARTH_RTMP_PORT="$RTMP_PORT"; fi
    effective_ports "$USER_VENV"

    case "$run" in
        service) run_user_service ;;
        background) run_background ;;
        *) run_foreground ;;
    esac
}

next_steps_user() {
    cat <<EOF

Next step - create a stream (prints the stream key once):
  hearth stream create --title "My first stream"      # or: hearth tui
Other ports: HEARTH_HTTP_PORT=8081 HEARTH_RTMP_PORT=1936 ./install.sh (kept for upgrades)
Config:  $USER_CONF/hearth.toml (optional; see docs/configuration.md, \`hearth config show\`)
Data:    $USER_BASE (kept across upgrades; re-run ./install.sh to upgrade)
Remove:  ./install.sh --uninstall (keeps data)  |  ./install.sh --uninstall --purge
EOF
    path_advice
}

run_user_service() {
    install_user_unit
    if [ "$START" -eq 1 ]; then
        say "(re)starting the user service hearth.service"
        systemctl --user restart hearth.service
        if ! wait_healthz "$USER_VENV/bin/python"; then
            systemctl --user --no-pager --lines=0 status hearth.service >&2 || true
            journalctl --user --no-pager -u hearth.service -n 40 >&2 || true
            die "the user service did not become healthy on port ${HTTP_PORT}"
        fi
    else
        say "--no-start: not (re)starting the user service"
    fi
    print_urls
    cat <<EOF

Service: systemctl --user status hearth  |  journalctl --user -u hearth -f
Stop:    systemctl --user stop hearth    (start: systemctl --user start hearth)
EOF
    linger_advice
    next_steps_user
}

run_background() {
    if [ "$START" -eq 1 ]; then
        start_background
        if ! wait_healthz "$USER_VENV/bin/python"; then
            tail -n 40 "$USER_LOG" >&2 || true
            stop_background || true
            die "hearth serve did not become healthy on port ${HTTP_PORT} (log: $USER_LOG)"
        fi
    else
        say "--no-start: not starting hearth serve"
    fi
    print_urls
    cat <<EOF

Running in the background (pid $(cat "$USER_PID" 2>/dev/null || echo "-")).
Log:  tail -f $USER_LOG
Stop: ./install.sh --stop      (start again: ./install.sh --background)
EOF
    next_steps_user
}

run_foreground() {
    print_urls
    next_steps_user
    if [ "$START" -eq 1 ]; then
        cat <<EOF

No systemd user service here: Hearth runs in this terminal and stops with it. Alternatively:
  ./install.sh --background   runs it in the background with a log file ($USER_LOG)
EOF
        say "starting hearth serve in the foreground (Ctrl-C to stop)"
        exec "$USER_VENV/bin/hearth" serve
    fi
}

# safe_rm DIR: rm -rf, refusing anything that is not clearly one of our directories.
safe_rm() {
    case "$1" in
        '' | / | "$HOME" | "$HOME/") die "refusing to delete '$1'" ;;
        */hearth | */hearth/venv | "$SYSTEM_PREFIX") rm -rf -- "$1" ;;
        *) die "refusing to delete '$1' (not a hearth directory)" ;;
    esac
}

uninstall_user() {
    stop_user || true
    if socket_answers "$USER_BASE/admin.sock"; then
        die "Hearth still runs in another terminal (admin socket $USER_BASE/admin.sock): stop it there (Ctrl-C), then run ./install.sh --uninstall again"
    fi
    if [ -f "$USER_UNIT" ]; then
        if has_user_systemd; then systemctl --user disable --quiet hearth.service || true; fi
        rm -f "$USER_UNIT"
        if has_user_systemd; then systemctl --user daemon-reload || true; fi
        say "removed the user service"
    fi
    if [ -L "$USER_BIN/hearth" ] && [ "$(readlink "$USER_BIN/hearth")" = "$USER_VENV/bin/hearth" ]; then
        rm -f "$USER_BIN/hearth"
        say "removed $USER_BIN/hearth"
    fi
    if [ -d "$USER_VENV" ]; then
        safe_rm "$USER_VENV"
        say "removed $USER_VENV"
    fi
    rm -f "$USER_PID" "$USER_BASE/README.md"
    if [ "$PURGE" -eq 1 ]; then
        if [ -d "$USER_BASE" ]; then safe_rm "$USER_BASE"; fi
        if [ -d "$USER_CONF" ]; then safe_rm "$USER_CONF"; fi
        say "deleted the data ($USER_BASE) and the config ($USER_CONF)"
    else
        cat <<EOF
Hearth is uninstalled. Kept your data in $USER_BASE (database, keys, recordings) and the
config in $USER_CONF: reinstall with ./install.sh, or delete them with
  ./install.sh --uninstall --purge
EOF
    fi
}

stop_user_action() {
    if stop_user; then
        say "stopped"
    elif socket_answers "$USER_BASE/admin.sock"; then
        die "Hearth runs in a terminal (not started by install.sh as a service or in the background): stop it there with Ctrl-C"
    else
        say "Hearth is not running"
    fi
}

# ---------------------------------------------------------------- main

case "$MODE" in
    auto)
        if [ "$ACTION" = install ]; then
            if [ "$(id -u)" -eq 0 ] && has_systemd; then MODE=system; else MODE=user; fi
        elif [ "$(id -u)" -eq 0 ] && { [ -f "$UNIT_DST" ] || [ -d "$SYSTEM_PREFIX" ]; }; then
            MODE=system
        else
            MODE=user
        fi ;;
    user | system) ;;
    *) die "HEARTH_INSTALL_MODE must be auto, user or system (got '$MODE')" ;;
esac

if [ -n "$DOMAIN" ] || [ "$PRINT_CADDYFILE" -eq 1 ]; then
    valid_domain "$DOMAIN" || die "--domain needs a DNS name such as live.example.org (got '$DOMAIN')"
fi
if [ "$PRINT_CADDYFILE" -eq 1 ]; then
    render_caddyfile "$DOMAIN" "127.0.0.1:${HTTP_PORT}" "${HEARTH_CADDY_TLS:-}"
    exit 0
fi
if [ -n "$DOMAIN" ] && [ "$MODE" != system ]; then
    die "--domain needs a system install (root and systemd): Caddy takes ports 80 and 443"
fi

case "$ACTION:$MODE" in
    stop:system) systemctl stop hearth.service && say "stopped hearth.service" ;;
    stop:user) stop_user_action ;;
    uninstall:system) uninstall_system ;;
    uninstall:user) uninstall_user ;;
    install:system) say "Hearth system install from $SRC_DIR"; install_system ;;
    *) say "Hearth user install from $SRC_DIR"; install_user ;;
esac
