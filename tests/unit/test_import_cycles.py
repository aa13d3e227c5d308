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


def test_no_module_imports_back_from_the_package_facade() -> None:
    """`llenergymeasure/__init__.py` is the library's facade: modules import what they need from
    the module that defines it (e.g. `llenergymeasure.version`), never from the facade."""
    graph = grimp.build_graph("llenergymeasure")
    back = sorted(
        importer
        for importer in graph.find_modules_that_directly_import("llenergymeasure")
        if importer != "llenergymeasure"
    )
    assert not back, f"modules importing the package facade: {back}"
