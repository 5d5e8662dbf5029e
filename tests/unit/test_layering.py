"""The layering of docs/architecture.md, kept true by reading every module's imports (ast, no import
runs): functions/ -> composition root -> domain <- store, engine, adapters; views apart from the
store; no import cycle among Sluice's modules; nothing constructed from a store or adapter in an edge.

Imports inside `if TYPE_CHECKING:` are annotations only and are not counted; imports inside
functions are (they run, only later).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "core" / "python"
FUNCTIONS = ROOT / "functions"

# What a layer may never import (a module name or any module below it).
FORBIDDEN = {
    "sluice.domain": (
        "sluice.store",
        "sluice.adapters",
        "sluice.composition",
        "sluice.edge",
        "sluice.engine",
        "sluice.local",
        "sluice.aws",
        "sluice.config",
        "boto3",
        "botocore",
        "fastapi",
        "starlette",
        "mangum",
        "moto",
    ),
    "sluice.store": (
        "sluice.domain.views",
        "sluice.adapters",
        "sluice.composition",
        "sluice.edge",
        "sluice.engine",
        "sluice.local",
        "fastapi",
    ),
    "sluice.adapters": (
        "sluice.domain.views",
        "sluice.store",
        "sluice.composition",
        "sluice.edge",
        "sluice.local",
        "fastapi",
    ),
    "sluice.engine": (
        "sluice.domain.views",
        "sluice.store",
        "sluice.adapters",
        "sluice.composition",
        "sluice.edge",
        "sluice.local",
        "fastapi",
    ),
    "sluice.edge": ("sluice.store", "sluice.adapters", "sluice.composition", "sluice.local"),
    "sluice.composition": ("sluice.edge", "sluice.local", "fastapi"),
    # The SDK and the CLI's API commands run where the server's dependencies are not installed.
    "sluice.client": (
        "sluice.domain",
        "sluice.store",
        "sluice.adapters",
        "sluice.composition",
        "sluice.edge",
        "sluice.engine",
        "sluice.local",
        "sluice.aws",
        "sluice.config",
        "sluice.auth",
        "boto3",
        "botocore",
        "fastapi",
        "starlette",
        "mangum",
        "duckdb",
        "aws_lambda_powertools",
    ),
}
FORBIDDEN["sluice.cli"] = FORBIDDEN["sluice.client"]
# An edge (functions/<area>/*.py) gets services from the composition root; what it may import from
# these, it may name (annotations, exceptions) but never call (construct).
NEVER_CALLED_IN_FUNCTIONS = ("sluice.store", "sluice.adapters", "sluice.aws", "boto3", "botocore")


@dataclass(frozen=True)
class Import:
    module: str  # the module imported (a submodule when `from package import submodule`)
    names: tuple[tuple[str, str], ...]  # (bound name, imported name) of a `from` import
    line: int


def module_name(path: Path) -> str:
    if path.is_relative_to(FUNCTIONS):
        return "functions." + ".".join(path.relative_to(FUNCTIONS).with_suffix("").parts)
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = PACKAGE.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def sources() -> list[Path]:
    return sorted([*(PACKAGE / "sluice").rglob("*.py"), *FUNCTIONS.rglob("*.py")])


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(node: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs, skipping `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking_only(child):
            yield from (n for orelse in child.orelse for n in [orelse, *_walk_runtime(orelse)])
            continue
        yield child
        yield from _walk_runtime(child)


def imports_of(tree: ast.Module) -> list[Import]:
    found = []
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            bound = tuple((alias.asname or alias.name, alias.name) for alias in node.names)
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            found.append(Import(node.module, bound, node.lineno))
            found += [Import(name, (), node.lineno) for name in submodules if is_module(name)]
    return found


def parsed() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(path): (path, ast.parse(path.read_text(), str(path))) for path in sources()}


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(modules: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    found = []
    for name, (path, tree) in modules.items():
        for layer, forbidden in FORBIDDEN.items():
            if not within(name, layer):
                continue
            for imported in imports_of(tree):
                for banned in forbidden:
                    if within(imported.module, banned):
                        found.append(
                            f"{path.relative_to(ROOT)}:{imported.line}: {name} imports {imported.module}"
                        )
    return sorted(set(found))


def constructed_in_functions(modules: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    found = []
    for name, (path, tree) in modules.items():
        if not name.startswith("functions."):
            continue
        banned_names = {
            bound
            for imported in imports_of(tree)
            for bound, _ in imported.names
            if any(within(imported.module, b) for b in NEVER_CALLED_IN_FUNCTIONS)
        }
        banned_modules = {
            imported.module.split(".")[-1]
            for imported in imports_of(tree)
            if not imported.names and any(within(imported.module, b) for b in NEVER_CALLED_IN_FUNCTIONS)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            target = node.func
            while isinstance(target, ast.Attribute):
                target = target.value
            if isinstance(target, ast.Name) and (target.id in banned_names or target.id in banned_modules):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name} calls {ast.unparse(node.func)}")
    return found


def import_graph(modules: dict[str, tuple[Path, ast.Module]]) -> dict[str, set[str]]:
    """Module -> the Sluice modules it imports, with the packages above each (whose __init__ runs
    first), except the importing module's own packages (already imported by the time it runs)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (_path, tree) in modules.items():
        for imported in imports_of(tree):
            if not within(imported.module, "sluice"):
                continue
            parts = imported.module.split(".")
            for depth in range(1, len(parts) + 1):
                target = ".".join(parts[:depth])
                if target in modules and not within(name, target):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


@pytest.fixture(scope="module")
def modules() -> dict[str, tuple[Path, ast.Module]]:
    return parsed()


def test_every_layer_imports_only_what_it_may(modules):
    assert layer_violations(modules) == []


def test_no_import_cycle_among_sluices_modules(modules):
    assert cycles(import_graph(modules)) == []


def test_the_edges_construct_nothing_from_the_store_or_an_adapter(modules):
    assert constructed_in_functions(modules) == []


def test_the_checks_see_a_violation_when_there_is_one():
    # Given a domain module that imports the store, a store module that imports a view, an import
    # cycle, and an edge that builds a repository
    domain = ast.parse("from sluice.store.table import Table\n")
    store = ast.parse("def f():\n    from sluice.domain.views.runs import runs_api_view\n")
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import boto3\n")
    edge = ast.parse("from sluice.store.executions import RunRepository\nRunRepository(None)\n")
    fake = {
        "sluice.domain.fake": (ROOT / "domain_fake.py", domain),
        "sluice.store.fake": (ROOT / "store_fake.py", store),
        "sluice.domain.typed": (ROOT / "typed_fake.py", typed),
        "functions.fake.app": (ROOT / "app_fake.py", edge),
    }
    # Then each is reported (and an annotation-only import is not)
    assert [v.split(": ", 1)[1] for v in layer_violations(fake)] == [
        "sluice.domain.fake imports sluice.store.table",
        "sluice.store.fake imports sluice.domain.views.runs",
    ]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert [v.split(": ", 1)[1] for v in constructed_in_functions(fake)] == [
        "functions.fake.app calls RunRepository"
    ]
