"""Which of the ingest path's modules run compiled (mypyc), and the guard that keeps them honest.

The per-unit work of ingest (FLV depacketizing, the timeline, NAL walking, the health meter,
fMP4 fragments, the LL-HLS muxer, the unit records themselves) is ordinary typed Python. Where
a C compiler is present at install, ``setup.py`` also compiles exactly these modules with
mypyc, from the same source, into one extension group (:data:`GROUP`). The Python source stays
the reference: it is what the type checker reads, what a machine without a compiler runs, and
what ``HEARTH_COMPILED_MEDIA=0`` selects. docs/architecture.md "Ingest hot path" has the
measurements.

Compiled modules see each other's classes natively (a compiled depacketizer builds the
compiled ``MediaUnit`` directly), so the group is all or nothing: if any module must come from
source, they all do, or an interpreted ``MediaUnit`` and a compiled one would meet and fail each
other's ``isinstance``. The build writes :data:`MANIFEST` (each module's source SHA-256) next to
the compiled modules; a module whose source no longer matches (edited in a checkout after
``pip install -e .``) sends the whole group back to source rather than run stale code.

:func:`route` runs from ``media/__init__.py``, before any of these modules is imported.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

COMPILED_MODULES: tuple[str, ...] = (
    "media.units",
    "media.timeline",
    "media.h264",
    "media.depacketizer",
    "media.health",
    "media.fmp4",
    "media.hls.segmenter",
)
"""The modules setup.py compiles (it reads this tuple from this file's source)."""

GROUP = "hearth_media"
"""mypyc's group name: the shared library is the top-level module ``hearth_media__mypyc``."""

MANIFEST = "_compiled.json"
"""Written by the build into the ``media`` package directory: ``{module: source sha256}``."""

ENV = "HEARTH_COMPILED_MEDIA"
"""``0`` runs the group from source even where it is compiled (diagnosis, comparison)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether the compiled group is used, and why (shown in the serve start line)."""

    compiled: bool
    reason: str

    def describe(self) -> str:
        return "compiled" if self.compiled else f"Python ({self.reason})"


def source_path(package_dir: Path, module: str) -> Path:
    """The ``.py`` file of a ``media.*`` module, under the ``media`` package directory."""
    parts = module.split(".")[1:]
    return package_dir.joinpath(*parts[:-1], parts[-1] + ".py")


def _extension_exists(package_dir: Path, module: str) -> bool:
    src = source_path(package_dir, module)
    return any(src.with_name(src.stem + suffix).exists()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decide(package_dir: Path, environ: Mapping[str, str],
           modules: Sequence[str] = COMPILED_MODULES) -> Decision:
    """Whether the compiled group under ``package_dir`` may be used (pure: files and ``environ``).

    Compiled only when every module has its extension, the manifest names every module, and
    each source still hashes to what was compiled.
    """
    if environ.get(ENV, "").strip() == "0":
        return Decision(False, f"{ENV}=0")
    missing = [m for m in modules if not _extension_exists(package_dir, m)]
    if len(missing) == len(modules):
        return Decision(False, "not compiled: pip install compiles it where a C compiler and "
                               "the Python headers are present")
    if missing:
        return Decision(False, f"incomplete build, {missing[0]} is not compiled")
    try:
        built = json.loads((package_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Decision(False, f"no valid {MANIFEST} from the build")
    if not isinstance(built, dict):
        return Decision(False, f"no valid {MANIFEST} from the build")
    for m in modules:
        src = source_path(package_dir, m)
        try:
            current = digest(src)
        except OSError:
            return Decision(False, f"{m}'s source is missing")
        if built.get(m) != current:
            rel = src.relative_to(package_dir.parent)
            return Decision(False, f"{rel} changed since it was compiled: re-run pip install")
    return Decision(True, "")


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Imports the group's modules from their ``.py`` files, ahead of the extension finder."""

    def __init__(self, package_dir: Path, modules: Sequence[str]) -> None:
        self._dir = package_dir
        self._modules = frozenset(modules)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._modules:
            return None
        return importlib.util.spec_from_file_location(
            fullname, source_path(self._dir, fullname))


DECISION = Decision(False, "not decided yet")
"""What :func:`route` decided for this process."""


def route(package_dir: Path) -> Decision:
    """Decide once per process and, unless compiled, import the group from source."""
    global DECISION
    decision = decide(package_dir, os.environ)
    if not decision.compiled and not any(
            isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(package_dir, COMPILED_MODULES))
    DECISION = decision
    return decision


def loaded_compiled() -> list[str]:
    """The group's modules this process imported as extensions (for tests and diagnosis)."""
    out = []
    for name in COMPILED_MODULES:
        mod = sys.modules.get(name)
        if mod is not None and not str(getattr(mod, "__file__", "")).endswith(".py"):
            out.append(name)
    return out
