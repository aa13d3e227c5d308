"""No import circle among the package's modules (imports inside functions count too)."""

from __future__ import annotations

import grimp


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("llenergymeasure")
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                circles.append(graph.find_shortest_chain(importer=imported, imported=module))
    assert not circles, f"import circles: {circles[:3]}"
