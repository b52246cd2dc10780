"""Build of the optional native code (everything else is in pyproject.toml).

Both parts are optional: where no C compiler or Python headers are present the build warns
and Hearth runs the same code in Python, which tests hold to the same output.

- ``media/rtmp/_chunks.c`` is the RTMP chunk reader's hot path in C (the Python reference is
  media/rtmp/chunk.py ``message_run_reader``).
- The modules named in ``media/accel.py`` ``COMPILED_MODULES`` (the per-unit ingest path) are
  compiled from their own source by mypyc, as one group, all or nothing: if any of them fails
  to build, none is kept. The build then writes ``media/_compiled.json`` (each source's
  SHA-256), so an edited source is noticed at import and the group runs from source
  (media/accel.py).
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def _accel_constant(name: str) -> Any:
    """A literal from media/accel.py, read without importing the package being built."""
    tree = ast.parse((HERE / "media" / "accel.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            return ast.literal_eval(node.value)
    raise LookupError(f"media/accel.py has no {name}")


COMPILED_MODULES: tuple[str, ...] = _accel_constant("COMPILED_MODULES")
GROUP: str = _accel_constant("GROUP")
MANIFEST: str = _accel_constant("MANIFEST")


def _module_source(module: str) -> Path:
    return HERE.joinpath(*module.split(".")).with_suffix(".py")


def _mypyc_extensions() -> list[Extension]:
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("warning: mypyc is not available: the ingest path's modules stay Python",
              file=sys.stderr)
        return []
    try:
        exts = mypycify([str(_module_source(m).relative_to(HERE)) for m in COMPILED_MODULES],
                        group_name=GROUP, opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by exiting
        print(f"warning: mypyc could not compile the ingest path ({exc}); it stays Python",
              file=sys.stderr)
        return []
    for ext in exts:
        ext.optional = True
    return list(exts)


class BuildExt(build_ext):
    """Keeps the mypyc group only when every module of it built, then writes its manifest."""

    def run(self) -> None:
        self._built: set[str] = set()
        super().run()
        group = [e.name for e in self.extensions if e.name in self._group_names()]
        if not group:
            return
        manifest = Path(self.get_ext_fullpath(COMPILED_MODULES[0])).parent / MANIFEST
        if all(name in self._built for name in group):
            manifest.write_text(json.dumps(
                {m: hashlib.sha256(_module_source(m).read_bytes()).hexdigest()
                 for m in COMPILED_MODULES}, indent=1) + "\n", encoding="utf-8")
            return
        print("warning: the mypyc group did not build completely: the ingest path's modules "
              "stay Python", file=sys.stderr)
        for name in group:
            Path(self.get_ext_fullpath(name)).unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)

    def build_extension(self, ext: Extension) -> None:
        super().build_extension(ext)  # an optional one that fails raises, caught by setuptools
        self._built.add(ext.name)

    @staticmethod
    def _group_names() -> set[str]:
        return {*COMPILED_MODULES, f"{GROUP}__mypyc"}


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension("media.rtmp._chunks", ["media/rtmp/_chunks.c"], optional=True,
                  extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                      "-Wno-missing-field-initializers"]),
        *_mypyc_extensions(),
    ],
)
