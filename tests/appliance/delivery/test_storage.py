"""The storage seam's writes: whole, in order, across short writes and many buffers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.delivery import storage
from appliance.delivery.storage import IOV_MAX, DiskStorage, write_all


def test_write_atomic_writes_bytes_and_chunks(tmp_path: Path) -> None:
    disk = DiskStorage()
    disk.write_atomic(tmp_path / "a", b"hello")
    chunks = [bytes([i % 256]) * (i % 7) for i in range(IOV_MAX * 2 + 5)]  # > IOV_MAX buffers
    disk.write_atomic(tmp_path / "b", chunks)
    assert (tmp_path / "a").read_bytes() == b"hello"
    assert (tmp_path / "b").read_bytes() == b"".join(chunks)
    assert not list(tmp_path.glob("*.tmp"))


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=40), cap=st.integers(1, 50))
def test_write_all_resumes_after_short_writes(tmp_path_factory: pytest.TempPathFactory,
                                              chunks: list[bytes], cap: int) -> None:
    """A writev that takes at most ``cap`` bytes at a time (a full pipe, a signal) still
    writes everything, once, in order."""
    real = os.writev
    path = tmp_path_factory.mktemp("w") / "f"

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        taken, out = 0, []
        for b in buffers:
            if taken >= cap:
                break
            out.append(b[: cap - taken])
            taken += len(out[-1])
        return real(fd, out)

    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(storage.os, "writev", short_writev)
            write_all(fd, chunks)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(chunks)
