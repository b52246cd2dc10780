"""Whether this machine can build Hearth's native code (the C chunk parser, the mypyc group)."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path


def compiler_and_headers() -> bool:
    """A C compiler and this interpreter's headers: what pip needs to build them at install."""
    include = sysconfig.get_paths()["include"]
    return shutil.which("cc") is not None and (Path(include) / "Python.h").exists()
