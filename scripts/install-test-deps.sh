#!/usr/bin/env bash
# Install everything the test suite needs. Idempotent and quick when nothing is missing.
#
#   bash scripts/install-test-deps.sh
#
# - Debian packages (as root, via apt-get; only the missing ones):
#   gcc libc6-dev python3-dev (pip builds the C RTMP chunk parser, media/rtmp/_chunks.c, and
#   compiles the ingest path with mypyc, media/accel.py),
#   ffmpeg chromium nginx libnginx-mod-rtmp libnginx-mod-stream (RTMPS target) tmux shellcheck,
#   GStreamer (rtmp2sink publisher), libsrt1.5-gnutls (SRT ingest, loaded with ctypes)
#   Not root: missing packages are reported, and tests that need them skip.
# - A virtualenv ($HEARTH_VENV, default .venv in the repo) with `pip install -e '.[test]'`,
#   plus setuptools/wheel so tests can build the project offline (--no-build-isolation).
#   Set HEARTH_VENV to an existing venv to reuse it (e.g. a CI cache).
# - The real Nostr relay (tests/nostr-relay-requirements.txt) in its own venv under
#   $HEARTH_TEST_CACHE (default ~/.cache/hearth-tests); the tests never pip-install.
# Prints tool versions at the end.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

APT_PACKAGES=(gcc libc6-dev python3-dev ffmpeg chromium nginx libnginx-mod-rtmp libnginx-mod-stream tmux shellcheck caddy libsrt1.5-gnutls
    gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav)

log() { printf '==> %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
        log "apt-get install ${missing[*]}"
        # Only refresh the package lists when they are missing or the install fails.
        if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]; then
            "${apt[@]}" update >/dev/null
        fi
        if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null; then
            "${apt[@]}" update >/dev/null
            "${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null
        fi
    else
        log "not root: cannot apt-get install ${missing[*]} (tests needing them will skip)"
    fi
fi

venv=${HEARTH_VENV:-$repo/.venv}
py=${HEARTH_PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    log "creating virtualenv $venv"
    "$py" -m venv "$venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Skip pip entirely when the editable install is already current (pyproject unchanged).
stamp="$venv/.hearth-test-deps.sha256"
want=$(cat pyproject.toml setup.py media/rtmp/_chunks.c media/accel.py "${BASH_SOURCE[0]}" |
    sha256sum | cut -d' ' -f1)
# The compiled ingest path (media/accel.py) notices its own sources changing: rebuild then too.
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
    "$venv/bin/python" -c 'import appliance, pytest' >/dev/null 2>&1 &&
    "$venv/bin/python" -c 'import sys, media.accel as a; sys.exit("changed since" in a.DECISION.reason)' >/dev/null 2>&1; then
    log "python test deps already installed in $venv"
else
    log "pip install -e '.[test]' into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade 'setuptools>=68' wheel
    "$venv/bin/python" -m pip install --quiet -e "${repo}[test]"
    printf '%s\n' "$want" >"$stamp"
fi

# hls-parser (npm) checks our playlists in strict mode (tests/helpers/strict_hls.py); the
# tests install it into their cache on first use too. Needs node + npm: Debian's `npm`
# package brings both when neither is installed.
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "apt-get install npm (for hls-parser / nostr-tools checks)"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q \
            install --no-install-recommends npm >/dev/null || log "npm install failed"
    else
        log "not root: cannot install npm (hls-parser checks will skip)"
    fi
fi
hls_cache="${HEARTH_TEST_CACHE:-$HOME/.cache/hearth-tests}/hls-parser-0.16.1"
if command -v npm >/dev/null 2>&1 && [ ! -f "$hls_cache/node_modules/hls-parser/package.json" ]; then
    log "npm install hls-parser@0.16.1 into $hls_cache"
    mkdir -p "$hls_cache"
    [ -f "$hls_cache/package.json" ] || echo '{"name":"hearth-hls-parser-check","private":true}' >"$hls_cache/package.json"
    (cd "$hls_cache" && npm install --no-audit --no-fund hls-parser@0.16.1 >/dev/null) ||
        log "npm install hls-parser failed (strict playlist checks will skip)"
fi

# The real Nostr relay (PyPI nostr-relay) in its own venv: its dependency pins are not ours.
# tests/relay_client/conftest.py uses it and never installs anything itself.
test_cache="${HEARTH_TEST_CACHE:-$HOME/.cache/hearth-tests}"
relay_venv="${HEARTH_NOSTR_RELAY_VENV:-$test_cache/nostr-relay-venv}"
relay_req="$repo/tests/nostr-relay-requirements.txt"
if [ ! -x "$relay_venv/bin/nostr-relay" ] || ! cmp -s "$relay_req" "$relay_venv/hearth-requirements.txt"; then
    log "pip install -r tests/nostr-relay-requirements.txt into $relay_venv"
    mkdir -p "$(dirname "$relay_venv")"
    "$py" -m venv "$relay_venv"
    "$relay_venv/bin/python" -m pip install --quiet -r "$relay_req"
    cp "$relay_req" "$relay_venv/hearth-requirements.txt"
fi

# werift (an independent WebRTC stack, pinned in tests/js/package-lock.json) as a WHEP
# client for tests/integration/test_whep_clients.py.
if command -v npm >/dev/null 2>&1 && [ ! -d tests/js/node_modules/werift ]; then
    log "npm ci in tests/js (werift)"
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error ||
        log "npm ci failed (werift WHEP tests will skip)"
fi

# Playwright uses Debian's Chromium (no browser download): tests pass
# executable_path=/usr/bin/chromium.

# First line matching PATTERN in the output of CMD..., or "not installed".
ver() {
    local pat=$1
    shift
    if command -v "$1" >/dev/null 2>&1; then "$@" 2>&1 | grep -m1 -E "$pat" || true; else echo "$1: not installed"; fi
}
log "versions"
echo "python:     $("$venv/bin/python" -VV | head -n1)"
echo "ffmpeg:     $(ver "^ffmpeg version" ffmpeg -version)"
echo "chromium:   $(ver "Chromium" chromium --version)"
echo "nginx:      $(ver "nginx version" nginx -v)"
echo "tmux:       $(ver "^tmux" tmux -V)"
echo "shellcheck: $(ver "^version" shellcheck --version)"
"$venv/bin/python" - <<'PYEOF'
from importlib.metadata import PackageNotFoundError, version
names = ["hearth", "aiohttp", "av", "pytest", "ruff", "mypy", "import-linter", "playwright"]
out = []
for n in names:
    try:
        out.append(f"{n} {version(n)}")
    except PackageNotFoundError:
        out.append(f"{n} -")
print("python pkgs: " + ", ".join(out))
PYEOF
