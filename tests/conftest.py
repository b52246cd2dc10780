"""Shared fixtures: a real appliance process on loopback with a short data-dir path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.helpers.appliance import ApplianceProcess, short_tmpdir


@pytest.fixture
def data_dir() -> Iterator[object]:
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def appliance(data_dir: object) -> Iterator[ApplianceProcess]:
    """A running ``hearth serve`` (grace window 4 s, auth delay ≤ 0.1 s)."""
    app = ApplianceProcess(data_dir)  # type: ignore[arg-type]
    app.start()
    yield app
    app.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.slow)
