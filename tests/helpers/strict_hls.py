"""Independent HLS playlist parsers as oracles: ``m3u8`` (PyPI) and ``hls-parser`` (npm, strict).

``hls-parser`` in strict mode enforces many of rfc8216bis's MUSTs/SHOULDs (EXTINF rounding vs
target duration, part durations vs PART-TARGET, part retention, skip boundary, preload hints).
It is installed once into the test cache with npm (``scripts/install-test-deps.sh`` does it
too); without node/npm the tests that need it skip (fail in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import m3u8
import pytest

HLS_PARSER = "hls-parser@0.16.1"

_SCRIPT = r"""
const HLS = require('hls-parser');
HLS.setOptions({strictMode: true});
const docs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = docs.map(text => {
  try {
    const pl = HLS.parse(text);
    return {ok: true, master: pl.isMasterPlaylist,
            segments: pl.isMasterPlaylist ? 0 : pl.segments.length,
            target: pl.isMasterPlaylist ? null : pl.targetDuration};
  } catch (e) {
    return {ok: false, error: String(e && e.message || e)};
  }
});
process.stdout.write(JSON.stringify(out));
"""


def _cache_dir() -> Path:
    base = os.environ.get("HEARTH_TEST_CACHE") or os.path.expanduser("~/.cache/hearth-tests")
    path = Path(base) / HLS_PARSER.replace("@", "-")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def hls_parser_dir() -> Path:
    """Directory holding ``node_modules/hls-parser`` (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _skip_or_fail("node/npm not installed: cannot check playlists with hls-parser")
    path = _cache_dir()
    if not (path / "node_modules" / "hls-parser" / "package.json").exists():
        (path / "package.json").write_text('{"name":"hearth-hls-parser-check","private":true}')
        try:
            subprocess.run([npm or "npm", "install", "--no-audit", "--no-fund", HLS_PARSER],
                           cwd=path, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as exc:
            _skip_or_fail(f"npm install {HLS_PARSER} failed: {exc}")
    return path


def hls_parser_check(texts: list[str]) -> list[dict[str, object]]:
    """Parse every playlist with hls-parser in strict mode; one result dict per playlist."""
    proc = subprocess.run(["node", "-e", _SCRIPT], cwd=hls_parser_dir(),
                          input=json.dumps(texts).encode(), capture_output=True, check=True,
                          timeout=120)
    result: list[dict[str, object]] = json.loads(proc.stdout)
    return result


def assert_strictly_valid(texts: list[str]) -> None:
    """Both parsers accept every playlist (and agree on the segment count)."""
    results = hls_parser_check(texts)
    for text, res in zip(texts, results, strict=True):
        assert res["ok"], f"hls-parser: {res.get('error')}\n{text}"
        pl = m3u8.loads(text)
        if pl.is_variant:
            assert res["master"] and pl.playlists, text
            continue
        assert pl.target_duration is not None
        complete = [seg for seg in pl.segments if seg.duration is not None]
        # hls-parser also counts the open (parts-only) segment; m3u8 lists it without EXTINF
        assert res["segments"] in (len(pl.segments), len(complete) + 1) or "EXT-X-SKIP" in text
        for seg in complete:
            assert round(seg.duration) <= pl.target_duration, text
