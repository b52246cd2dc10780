#!/usr/bin/env bash
# Hearth installer. Idempotent: re-running it upgrades in place and keeps all data.
#
#   sudo ./install.sh          system install: user "hearth", /opt/hearth/venv,
#                              systemd unit "hearth.service", data in /var/lib/hearth
#   ./install.sh               (not root, or no systemd) per-user install in
#                              ${XDG_DATA_HOME:-~/.local/share}/hearth, then runs
#                              `hearth serve` in the foreground
#
# Options:
#   --no-start     install only; do not start/restart the service or run `hearth serve`
#   --domain NAME  (system install) serve https://NAME through Caddy (Debian package) with
#                  automatic certificates; Hearth then listens on loopback only and its
#                  public URL is https://NAME. Ports 80 and 443 must reach this host.
#   --print-caddyfile  print the Caddyfile --domain would write, and exit
#   --user         force a per-user install (same as HEARTH_INSTALL_MODE=user)
#   --system       force a system install (same as HEARTH_INSTALL_MODE=system)
#   -h, --help     this text
#
# Environment:
#   HEARTH_PYTHON        interpreter to build the venv from (default: python3; must be >= 3.11)
#   HEARTH_INSTALL_MODE  auto (default) | user | system
#   HEARTH_PIP_ARGS      extra arguments for `pip install`, e.g. for an offline mirror:
#                        "--no-index --find-links /srv/wheels"
#   HEARTH_HTTP_PORT     HTTP port to probe for /healthz and print (default 8080)
#   HEARTH_RTMP_PORT     RTMP port to print (default 1935)
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
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

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
        --exclude=.pytest_cache --exclude=.hypothesis \
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
Config:   $SYSTEM_CONF_DIR/hearth.toml (optional; kept across upgrades)
Data:     $SYSTEM_DATA (kept across upgrades)
EOF
}

# ---------------------------------------------------------------- per-user install

install_user() {
    local py=${HEARTH_PYTHON:-python3}
    local base=${XDG_DATA_HOME:-$HOME/.local/share}/hearth
    local venv=$base/venv
    local bindir=$HOME/.local/bin

    check_python "$py"
    has_venv_module "$py" || die "'$py -m venv' is unavailable. On Debian/Ubuntu: sudo apt-get install python3-venv (or set HEARTH_PYTHON)"

    # The data dir (platformdirs' user data dir) holds keys and the database: owner-only.
    mkdir -p "$base"
    chmod 0700 "$base"
    ensure_venv "$py" "$venv"
    pip_install "$venv"

    mkdir -p "$bindir"
    ln -sfn "$venv/bin/hearth" "$bindir/hearth"
    say "linked $bindir/hearth"
    case ":$PATH:" in
        *":$bindir:"*) ;;
        *) warn "$bindir is not on your PATH; add it (e.g. in ~/.profile): export PATH=\"\$HOME/.local/bin:\$PATH\"" ;;
    esac

    print_urls
    cat <<EOF

Next step - in another terminal, create a stream (prints the stream key once):
  hearth stream create --title "My first stream"
Data: $base (kept across upgrades; re-run ./install.sh to upgrade)
EOF
    if [ "$START" -eq 1 ]; then
        say "starting hearth serve in the foreground (Ctrl-C to stop)"
        exec "$venv/bin/hearth" serve
    fi
}

# ---------------------------------------------------------------- main

case "$MODE" in
    auto)
        if [ "$(id -u)" -eq 0 ] && has_systemd; then MODE=system; else MODE=user; fi ;;
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

say "Hearth $MODE install from $SRC_DIR"
if [ "$MODE" = system ]; then install_system; else install_user; fi
