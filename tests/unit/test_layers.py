"""The pure core stays pure: no Kopf, no Kubernetes client, no I/O modules, directly or
through another module of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "bluegreen"
PURE = ["planner", "status", "desired", "names", "revision", "models", "clock"]
FORBIDDEN = {"kopf", "kubernetes", "urllib3", "aiohttp", "requests", "socket", "subprocess"}


def imports_of(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "bluegreen":
                found.update(f"bluegreen.{alias.name}" for alias in node.names)
    return found


def closure(module: str) -> set[str]:
    """Every module imported from ``module``, following the package's own modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in imports_of(todo.pop()):
            if name in seen:
                continue
            seen.add(name)
            if name.startswith("bluegreen.") and (PACKAGE / f"{name[10:]}.py").exists():
                todo.append(name[10:])
    return seen


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    reached = {name.split(".")[0] for name in closure(module)}
    assert not reached & FORBIDDEN, f"{module} reaches {sorted(reached & FORBIDDEN)}"


def test_only_the_api_module_and_the_plugin_talk_to_kubernetes() -> None:
    modules = [str(path.relative_to(PACKAGE).with_suffix("")) for path in PACKAGE.rglob("*.py")]
    talkers = {
        module
        for module in modules
        if any(name.split(".")[0] == "kubernetes" for name in imports_of(module))
    }
    # __main__ only loads credentials (through kube) to fail fast; the plugin is its own program,
    # and its client is its one door to the API.
    assert talkers <= {"kube", "plugin/client", "__main__"}, talkers
