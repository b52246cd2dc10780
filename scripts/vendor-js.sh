#!/usr/bin/env bash
# Refresh the vendored hls.js used by the watch page.
#
#   bash scripts/vendor-js.sh            # latest hls.js 1.x
#   HLSJS_VERSION=1.7.4 bash scripts/vendor-js.sh
#
# Needs npm (only to fetch the published tarball: `npm pack`, no node_modules,
# no install scripts). Writes appliance/static/vendor/{hls.min.js,hls.js.LICENSE}
# and updates the version line in appliance/static/vendor/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
spec="hls.js@${HLSJS_VERSION:-1}"
dest=appliance/static/vendor

command -v npm >/dev/null 2>&1 || { echo "npm is required (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$spec" >/dev/null)
tarball=$(find "$tmp" -maxdepth 1 -name 'hls.js-*.tgz' | head -n1)
[ -n "$tarball" ] || { echo "npm pack produced no tarball" >&2; exit 1; }
tar -xzf "$tarball" -C "$tmp"
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$tmp/package/package.json")

mkdir -p "$dest"
install -m 0644 "$tmp/package/dist/hls.min.js" "$dest/hls.min.js"
install -m 0644 "$tmp/package/LICENSE" "$dest/hls.js.LICENSE"
sha=$(sha256sum "$dest/hls.min.js" | cut -d' ' -f1)

if [ -f "$dest/README.md" ]; then
    sed -i -E "s/^- hls\.js version: .*/- hls.js version: ${version}/; s/^- sha256\(hls\.min\.js\): .*/- sha256(hls.min.js): ${sha}/" "$dest/README.md"
fi
echo "vendored hls.js ${version} (sha256 ${sha}) into ${dest}/"
