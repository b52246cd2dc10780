"""relay_client and appliance.nostr have no import cycles (issue 8: two ways to sign came from
``event`` ↔ ``signing``)."""

from __future__ import annotations

import grimp
import pytest


@pytest.mark.parametrize("package", ["relay_client", "appliance"])
def test_no_import_cycles_in_nostr_code(package: str) -> None:
    graph = grimp.build_graph(package)
    prefixes = ("relay_client", "appliance.nostr")
    modules = sorted(m for m in graph.modules if m.startswith(prefixes))
    assert len(modules) > 5
    cycles = []
    for a in modules:
        for b in graph.find_modules_directly_imported_by(a):
            if b.startswith(prefixes) and graph.find_shortest_chain(importer=b, imported=a):
                cycles.append((a, b))
    assert cycles == []


def test_relay_session_is_sans_io() -> None:
    graph = grimp.build_graph("relay_client", include_external_packages=True)
    for io in ("asyncio", "websockets"):
        assert graph.find_shortest_chain(importer="relay_client.session", imported=io) is None
