"""The storage seam: every write a recording makes goes through :class:`Storage`.

:class:`DiskStorage` is the real thing (write to a temporary name, fsync, rename; appends are
fsynced). Tests substitute a subclass that raises ``OSError(ENOSPC)`` or stalls, which is how
"disk full" and "slow disk" are exercised without filling a real disk. All methods block: call
them from the writer thread (:class:`~appliance.delivery.recorder.DiskWriter`), never the loop.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

TMP_SUFFIX = ".tmp"
IOV_MAX = 1024
"""Buffers per writev (POSIX IOV_MAX on Linux)."""

Data = bytes | Sequence[bytes]
"""What :meth:`Storage.write_atomic` writes: bytes, or byte strings in order (a segment's
parts, written with one ``writev`` instead of joined: :class:`~media.hls.segmenter.
CompletedSegment`)."""


def write_all(fd: int, data: Data) -> None:
    """Write all of ``data`` to ``fd``, resuming after short writes."""
    views = [memoryview(data)] if isinstance(data, bytes) else [memoryview(c) for c in data]
    views = [v for v in views if v.nbytes]
    while views:
        written = os.writev(fd, views[:IOV_MAX])
        while written:
            if written >= views[0].nbytes:
                written -= views.pop(0).nbytes
            else:
                views[0] = views[0][written:]
                written = 0


class Storage:
    """Blocking file operations used by the recorder, thumbnailer and retention."""

    def makedirs(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)

    def write_atomic(self, path: Path, data: Data) -> None:
        """Write ``data`` so that ``path`` is either absent/old or complete, never torn."""
        tmp = path.with_name(path.name + TMP_SUFFIX)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            write_all(fd, data)
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
