"""No module of envfactory imports itself through a circle of imports, type-only imports (those under
`if TYPE_CHECKING:`) included: a circle makes the import order matter and hides a missing seam (the
sandbox backend reaches its pool through `runtime.sandbox.host.WorkerHost`, not `pool.py`)."""

from __future__ import annotations

import grimp


def import_circles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One chain per direct import `a -> b` that closes a circle (`b` reaches `a` again), shortest first."""
    circles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                circles.append((module, *back))
    return sorted(circles, key=len)


def test_envfactory_has_no_import_circle() -> None:
    graph = grimp.build_graph("envfactory", exclude_type_checking_imports=False)
    assert import_circles(graph)[:5] == []


def test_a_type_only_circle_is_found() -> None:
    """The check can fail: a two-module circle and a three-module one are reported."""
    graph = grimp.ImportGraph()
    for importer, imported in [("p.backend", "p.pool"), ("p.pool", "p.backend"),
                               ("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.d", "p.a")]:
        graph.add_import(importer=importer, imported=imported)
    circles = import_circles(graph)
    assert ("p.backend", "p.pool", "p.backend") in circles
    assert ("p.a", "p.b", "p.c", "p.a") in circles
    assert not any(c[0] == "p.d" for c in circles)
