"""The package's layers are its folders, and each keeps its rules.

From the bottom up: ``api`` (the pydantic contract) < ``core`` (pure planning) < ``kube``
(the one client of the API server) < ``runtime`` (threads, watches, Kopf) < the process
(``__main__``). ``tools`` (build time) and ``plugin`` (a program of its own) stand beside
them on top of ``api`` and ``core``. A module imports only from its own layer or below, the
pure layers reach no I/O at all, and no module imports one that imports it back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "bluegreen"
# Each layer and the layers it may import from (itself included).
MAY_IMPORT: dict[str, set[str]] = {
    "api": {"api"},
    "core": {"api", "core"},
    "kube": {"api", "core", "kube"},
    "runtime": {"api", "core", "kube", "runtime"},
    "tools": {"api", "core", "tools"},
    "plugin": {"api", "core", "plugin"},
    "__main__": {"api", "core", "kube", "runtime", "__main__"},
}
PURE = ("api", "core")
IO = {
    "kopf",
    "kubernetes",
    "urllib3",
    "aiohttp",
    "requests",
    "socket",
    "subprocess",
    "threading",
    "asyncio",
    "concurrent",
    "http",
    "prometheus_client",
    "logging",
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``bluegreen.core.names``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports_of(module: str) -> set[str]:
    """What ``module`` imports: top-level names, and the package's modules in full."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    found.add(f"{node.module}.{alias.name}")
    return found


def own_imports(module: str) -> set[str]:
    return {name for name in imports_of(module) if name in MODULES and name != "bluegreen"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_is_in_a_layer() -> None:
    stray = {m for m in MODULES if layer_of(m) not in MAY_IMPORT and m != "bluegreen"}
    assert not stray, f"modules outside the layer folders: {sorted(stray)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "bluegreen"))
def test_nothing_imports_from_a_layer_above(module: str) -> None:
    allowed = MAY_IMPORT[layer_of(module)]
    above = {name for name in own_imports(module) if layer_of(name) not in allowed}
    assert not above, f"{module} imports from above its layer: {sorted(above)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) in PURE))
def test_pure_layers_do_no_io(module: str) -> None:
    reached = {name.split(".")[0] for name in imports_of(module)} & IO
    assert not reached, f"{module} imports {sorted(reached)}"


def test_no_import_cycle() -> None:
    graph = {m: own_imports(m) - {m} for m in MODULES}
    # A package imports nothing on its children's behalf: drop the edge child -> parent
    # package that ``from bluegreen.core import names`` makes.
    graph = {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in graph.items()}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


def test_only_the_client_layer_and_the_plugin_talk_to_kubernetes() -> None:
    talkers = {m for m in MODULES if any(n.split(".")[0] == "kubernetes" for n in imports_of(m))}
    # The plugin is its own program; its client is its one door to the API.
    assert talkers <= {"bluegreen.kube.client", "bluegreen.plugin.client"}, talkers


@pytest.mark.parametrize("module", ["bluegreen.kube.client", "bluegreen.runtime.queue"])
def test_the_client_and_the_queue_know_nothing_of_metrics(module: str) -> None:
    """They expose hooks (``on_answer``; ``on_new_queue``, ``on_forget``) that metrics
    register into, as controller-runtime's metrics adapter does."""
    assert "bluegreen.runtime.metrics" not in own_imports(module)
