"""No import cycles among our modules (issue 8: "No import cycles (a test proves it)").

The graph is grimp's (the library import-linter uses), built from every ``import`` statement
of the four packages, including imports inside functions and under ``TYPE_CHECKING``: a lazy
import that closes a loop is still a loop a reader has to untangle. Cycles are the strongly
connected components of that graph (Tarjan), reported with one concrete path each.
"""

from __future__ import annotations

import grimp

PACKAGES = ("appliance", "media", "relay_client", "tui")

ALLOWED_CYCLES: dict[frozenset[str], str] = {
    # frozenset({"pkg.a", "pkg.b"}): "why this cycle is acceptable",
}


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Components of more than one module, or a module importing itself (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.find_modules_directly_imported_by(node):
                    found.append(component)
    return found


def _describe(graph: grimp.ImportGraph, component: set[str]) -> str:
    first = min(component)
    others = sorted(component - {first}) or [first]
    path = graph.find_shortest_chain(importer=others[0], imported=first) or ()
    back = graph.find_shortest_chain(importer=first, imported=others[0]) or ()
    return f"{sorted(component)}: {' -> '.join(path)} and back {' -> '.join(back)}"


def test_no_import_cycles_among_our_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = [c for c in strongly_connected(graph) if frozenset(c) not in ALLOWED_CYCLES]
    assert not cycles, "import cycles:\n" + "\n".join(_describe(graph, c) for c in cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    """The check itself can fail: a graph with a lazy back-import has one component."""
    graph = grimp.ImportGraph()
    for name in ("x.a", "x.b", "x.c", "x.d"):
        graph.add_module(name)
    graph.add_import(importer="x.a", imported="x.b")
    graph.add_import(importer="x.b", imported="x.c")
    graph.add_import(importer="x.c", imported="x.a")
    graph.add_import(importer="x.d", imported="x.a")
    assert strongly_connected(graph) == [{"x.a", "x.b", "x.c"}]
