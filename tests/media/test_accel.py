"""The compiled ingest path (media/accel.py): built where it can be, used only when current,
all or nothing, and off on request."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import media
from media import accel
from media.accel import COMPILED_MODULES, ENV, MANIFEST, decide
from tests.helpers.native import compiler_and_headers

REPO = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]



def test_the_group_is_compiled_and_used_where_it_can_be() -> None:
    """Where a C compiler and the Python headers exist (CI installs both), the install compiled
    the group and this process runs it: a broken build must not pass unnoticed as the slower
    fallback. (The suite runs on the compiled group; the fallback has the tests below and an
    end-to-end publish in tests/integration/test_rtmp_to_hls.py.)"""
    if not compiler_and_headers():
        pytest.skip("no C compiler or Python headers here: the group runs from source")
    if os.environ.get(ENV) == "0":
        pytest.skip(f"{ENV}=0 in this environment")
    assert accel.DECISION.compiled, accel.DECISION.reason
    for name in COMPILED_MODULES:
        importlib.import_module(name)
    assert accel.loaded_compiled() == list(COMPILED_MODULES)


def _package(tmp_path: Path, *, built: tuple[str, ...] = COMPILED_MODULES,
             manifest: object = "match") -> Path:
    """A ``media`` package directory with sources, extensions for ``built`` and a manifest."""
    pkg = tmp_path / "media"
    hashes = {}
    for m in COMPILED_MODULES:
        src = accel.source_path(pkg, m)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {m}\n")
        hashes[m] = hashlib.sha256(src.read_bytes()).hexdigest()
        if m in built:
            src.with_name(src.stem + SUFFIX).write_bytes(b"\x7fELF")
    if manifest == "match":
        (pkg / MANIFEST).write_text(json.dumps(hashes))
    elif manifest is not None:
        (pkg / MANIFEST).write_text(str(manifest))
    return pkg


def test_a_complete_current_build_is_used(tmp_path: Path) -> None:
    assert decide(_package(tmp_path), {}).compiled


def test_it_is_off_on_request(tmp_path: Path) -> None:
    d = decide(_package(tmp_path), {ENV: "0"})
    assert not d.compiled and d.describe() == f"Python ({ENV}=0)"
    assert decide(_package(tmp_path / "b"), {ENV: "1"}).compiled


def test_no_build_runs_source(tmp_path: Path) -> None:
    d = decide(_package(tmp_path, built=(), manifest=None), {})
    assert not d.compiled and d.reason.startswith("not compiled: pip install compiles it")


def test_an_incomplete_build_runs_all_of_it_from_source(tmp_path: Path) -> None:
    """One module missing sends the whole group to source: compiled modules build each
    other's classes natively, so an interpreted MediaUnit must not meet a compiled one."""
    d = decide(_package(tmp_path, built=COMPILED_MODULES[1:]), {})
    assert not d.compiled and COMPILED_MODULES[0] in d.reason


@pytest.mark.parametrize("manifest", [None, "not json", "[1, 2]", '{"media.units": "0"}'])
def test_a_missing_or_wrong_manifest_runs_source(tmp_path: Path, manifest: object) -> None:
    assert not decide(_package(tmp_path, manifest=manifest), {}).compiled


def test_an_edited_source_runs_source_and_says_which(tmp_path: Path) -> None:
    """A checkout edited after ``pip install -e .`` must not run the stale compiled code."""
    pkg = _package(tmp_path)
    src = accel.source_path(pkg, "media.depacketizer")
    src.write_text(src.read_text() + "# edited\n")
    d = decide(pkg, {})
    assert not d.compiled
    assert d.reason == "media/depacketizer.py changed since it was compiled: re-run pip install"


def _probe(env_value: str | None) -> dict[str, object]:
    """A fresh interpreter's decision and the files its group came from."""
    code = (
        "import json, media.accel as a, media.depacketizer as d, media.units as u\n"
        "unit = d.FlvDepacketizer()\n"
        "print(json.dumps({'compiled': a.DECISION.compiled, 'reason': a.DECISION.reason,\n"
        "                  'loaded': a.loaded_compiled(), 'units': u.__file__}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_off_imports_every_module_of_the_group_from_its_source() -> None:
    probe = _probe("0")
    assert probe["compiled"] is False and probe["loaded"] == []
    assert str(probe["units"]).endswith("media/units.py")


_PIPELINE = """
import hashlib
from media.depacketizer import FlvDepacketizer
from media.health import HealthMeter
from media.hls.segmenter import HlsMuxer
from media.units import CLOCK_RATE, MediaUnit, TrackKind
from tests.media.hls.media_factory import make_stream

# FLV tags (E.4.2.1, E.4.3.1) of a real encode, through the whole group: depacketizer,
# timeline, NAL walk, health meter, fMP4 and the muxer.
s = make_stream(4.0, bframes=2)
tags = [("v", 0, bytes([0x17, 0, 0, 0, 0]) + s.video.avcc),
        ("a", 0, bytes([0xAF, 0]) + s.audio.asc)]
for u in s.units:
    ms = u.dts * 1000 // CLOCK_RATE
    if u.kind is TrackKind.VIDEO:
        cts = (u.pts - u.dts) * 1000 // CLOCK_RATE
        tags.append(("v", ms, bytes([0x17 if u.keyframe else 0x27, 1])
                     + cts.to_bytes(3, "big", signed=True) + u.data))
    else:
        tags.append(("a", ms, bytes([0xAF, 1]) + u.data))
clock = iter(range(10**9))
d = FlvDepacketizer(clock=lambda: 1.7e9 + next(clock) / 100)
m = HlsMuxer(part_target=0.2, segment_target=1.0, clock=lambda: 1.7e9)
health = HealthMeter()
for kind, ms, body in tags:
    for out in (d.video_tag if kind == "v" else d.audio_tag)(ms, body):
        if isinstance(out, MediaUnit):
            health.add(out)
            m.push(out)
        else:
            health.set_config(out.video, out.audio)
            m.set_config(out.video, out.audio)
m.end()
h = hashlib.sha256(m.playlist(low_latency=True).encode())
for line in m.playlist(low_latency=True).splitlines():
    if line and not line.startswith("#"):
        for c in m.chunks(line) or ():
            h.update(c)
print(h.hexdigest(), repr(health.snapshot()))
import media.accel
print(len(media.accel.loaded_compiled()))
"""


def test_the_source_group_packages_the_same_bytes() -> None:
    """The group from source and the group as this process runs it turn the same FLV tags into
    the same playlist and byte-identical fMP4 (the compiled group's own tests are the rest of
    the suite)."""
    outs = []
    for value in ("0", None):
        env = {k: v for k, v in os.environ.items() if k != ENV}
        if value is not None:
            env[ENV] = value
        outs.append(subprocess.run([sys.executable, "-c", _PIPELINE], env=env, cwd=REPO,
                                   check=True, capture_output=True, text=True,
                                   timeout=120).stdout.strip())
    (source, modules_a), (compiled, modules_b) = (o.rsplit("\n", 1) for o in outs)
    assert modules_a == "0"
    if accel.DECISION.compiled:  # else both ran from source (no compiler here)
        assert modules_b == str(len(COMPILED_MODULES))
    assert len(source) > 64 and source == compiled


def test_the_package_routes_once() -> None:
    """media/__init__ decided before its modules were imported, and installs one finder."""
    assert accel.DECISION.reason != "not decided yet"
    finders = [f for f in sys.meta_path if type(f).__name__ == "_SourceFinder"]
    assert len(finders) <= 1
    assert Path(media.__file__).resolve().parent == REPO / "media"
