#!/usr/bin/env sh
# Run a tool from the project virtualenv: $HEARTH_VENV, else .venv in the repo, else PATH.
# Used by .pre-commit-config.yaml so the hooks check with the same versions as scripts/test.sh.
#
#   scripts/venv-run.sh ruff check .
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
tool=$1
shift
venv=${HEARTH_VENV:-$repo/.venv}
if [ -x "$venv/bin/$tool" ]; then
    exec "$venv/bin/$tool" "$@"
fi
exec "$tool" "$@"
