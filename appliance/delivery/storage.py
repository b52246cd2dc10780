"""The storage seam: every write a recording makes goes through :class:`Storage`.

:class:`DiskStorage` is the real thing (write to a temporary name, fsync, rename; appends are
fsynced). Tests substitute a subclass that raises ``OSError(ENOSPC)`` or stalls, which is how
"disk full" and "slow disk" are exercised without filling a real disk. All methods block: call
them from the writer thread (:class:`~appliance.delivery.recorder.DiskWriter`), never the loop.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TMP_SUFFIX = ".tmp"


class Storage:
    """Blocking file operations used by the recorder, thumbnailer and retention."""

    def makedirs(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Write ``data`` so that ``path`` is either absent/old or complete, never torn."""
        tmp = path.with_name(path.name + TMP_SUFFIX)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)

    def append(self, path: Path, data: bytes) -> None:
        """Append ``data`` and fsync: a crash keeps every earlier complete append."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def remove_tree(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=False)


class DiskStorage(Storage):
    """The default, real storage (a name for readability at the composition root)."""
