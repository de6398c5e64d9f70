"""The Argo CD health check over sample BlueGreenApps: run by Argo CD itself, and in lupa.

The authority is the real `argocd` binary (built by hack/build-argocd.sh): `argocd admin
settings resource-overrides health` runs the script from the shipped argocd-cm patch exactly
as the application controller does, in its sandbox (gopher-lua, Lua 5.1, numbers as float64,
only the base, table and package libraries and a safe os). lupa runs health.lua under Lua 5.1
with floats and Lua 5.4 with integers, with the same libraries removed, for a quick check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51
import lupa.lua54
import pytest
import yaml

from argocdhealth import argocd_health

REPO = Path(__file__).resolve().parents[2]
ARGOCD_DIR = REPO / "deploy" / "argocd"
HEALTH_LUA = ARGOCD_DIR / "health.lua"
CM_PATCH = ARGOCD_DIR / "argocd-cm-patch.yaml"
DOC = REPO / "docs" / "argocd.md"
CM_KEY = "resource.customizations.health.bluegreen.dev_BlueGreenApp"


def bluegreenapp(generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    app: dict[str, Any] = {
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenApp",
        "metadata": {"name": "hello", "namespace": "default", "generation": generation},
        "spec": {"replicas": 2, "promote": False},
    }
    if status is not None:
        app["status"] = status
    return app


def observed(phase: str | None, message: str | None = None) -> dict[str, Any]:
    """A status the operator wrote for generation 3."""
    status: dict[str, Any] = {"observedGeneration": 3, "activeColor": "blue"}
    if phase is not None:
        status["phase"] = phase
    if message is not None:
        status["message"] = message
    return status


def as_gopher_lua_numbers(value: Any) -> Any:
    """Argo CD hands the object to Lua with every number as a float64."""
    if isinstance(value, dict):
        return {key: as_gopher_lua_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_gopher_lua_numbers(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


RUNTIMES = [
    pytest.param(lupa.lua51.LuaRuntime, as_gopher_lua_numbers, id="lua5.1-floats"),
    pytest.param(lupa.lua54.LuaRuntime, lambda value: value, id="lua5.4-integers"),
]


# Libraries lupa opens that Argo CD's sandbox does not (util/lua/lua.go opens only base,
# table, package and its own safe os): a script using them fails inside Argo CD.
NOT_IN_ARGOCD_SANDBOX = ("string", "math", "io", "os", "debug", "coroutine", "utf8", "bit32")


def run_health_check(runtime_class: Any, obj: dict[str, Any]) -> dict[str, Any]:
    lua = runtime_class()
    for library in NOT_IN_ARGOCD_SANDBOX:
        lua.globals()[library] = None
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    return dict(result.items())


def gated(phase: str, reason: str, message: str, state: str) -> dict[str, Any]:
    """A status with the gates' fields, as the operator writes them."""
    status = observed(phase, message)
    status["checks"] = [
        {
            "name": "smoke",
            "stage": "preview",
            "revision": "5d8f0c1a2b",
            "retry": 0,
            "state": state,
            "successes": 0,
            "failures": 3 if state == "Failed" else 1,
            "message": "HTTP 500: failing v2 (expected 200)",
        }
    ]
    status["conditions"] = [
        {
            "type": "Degraded",
            "status": "True" if phase == "Degraded" else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": "2026-11-27T10:00:00Z",
        }
    ]
    return status


CHECK_FAILED = (
    "check smoke failed on the preview of revision 5d8f0c1a2b: HTTP 500: failing v2 "
    "(expected 200); prod stays on blue (revision 1a2b3c4d5e); change the template or "
    "spec.retryChecks to run the checks again"
)
CHECKING = "revision 5d8f0c1a2b is ready on green; checking it: smoke Running (1 successes)"
ROLLED_BACK = (
    "revision 5d8f0c1a2b failed after the switch (check smoke failed against prod: HTTP 500); "
    "switched prod back to blue (revision 1a2b3c4d5e)"
)

CASES = [
    pytest.param(
        bluegreenapp(3, gated("Degraded", "CheckFailed", CHECK_FAILED, "Failed")),
        {"status": "Degraded", "message": CHECK_FAILED},
        id="failed-gate-is-degraded-with-its-answer",
    ),
    pytest.param(
        bluegreenapp(3, gated("Progressing", "Checking", CHECKING, "Running")),
        {"status": "Progressing", "message": CHECKING},
        id="running-gate-is-progressing",
    ),
    pytest.param(
        bluegreenapp(3, gated("Degraded", "RolledBack", ROLLED_BACK, "Failed")),
        {"status": "Degraded", "message": ROLLED_BACK},
        id="switched-back-is-degraded",
    ),
    pytest.param(
        bluegreenapp(3, observed("Healthy", "blue (rev 5d8f) serves 2/2 ready pods")),
        {"status": "Healthy", "message": "blue (rev 5d8f) serves 2/2 ready pods"},
        id="healthy",
    ),
    pytest.param(
        bluegreenapp(3, observed("Progressing", "Waiting for green: 1/2 pods ready")),
        {"status": "Progressing", "message": "Waiting for green: 1/2 pods ready"},
        id="progressing",
    ),
    pytest.param(
        bluegreenapp(3, observed("Paused", "Preview green is ready; set spec.promote to switch")),
        {"status": "Suspended", "message": "Preview green is ready; set spec.promote to switch"},
        id="paused-is-suspended",
    ),
    pytest.param(
        bluegreenapp(3, observed("Degraded", "green: ImagePullBackOff")),
        {"status": "Degraded", "message": "green: ImagePullBackOff"},
        id="degraded",
    ),
    pytest.param(
        bluegreenapp(3, observed("Healthy")),
        {"status": "Healthy", "message": ""},
        id="no-message",
    ),
    pytest.param(
        bluegreenapp(4, observed("Healthy", "stale")),
        {"status": "Progressing", "message": "Waiting for the operator to observe generation 4"},
        id="generation-not-observed-yet",
    ),
    pytest.param(
        bluegreenapp(3, {"phase": "Healthy", "message": "no observedGeneration"}),
        {"status": "Progressing", "message": "Waiting for the operator to observe generation 3"},
        id="observed-generation-missing",
    ),
    pytest.param(
        bluegreenapp(1, None),
        {"status": "Progressing", "message": "Waiting for the operator to observe generation 1"},
        id="no-status",
    ),
    pytest.param(
        bluegreenapp(3, observed(None)),
        {"status": "Progressing", "message": "Waiting for the operator to report a phase"},
        id="phase-missing",
    ),
    pytest.param(
        bluegreenapp(3, observed("Aborted", "from a newer operator")),
        {"status": "Progressing", "message": "Unknown phase Aborted: from a newer operator"},
        id="phase-unknown",
    ),
]


@pytest.mark.parametrize("runtime_class, convert", RUNTIMES)
@pytest.mark.parametrize("obj, expected", CASES)
def test_health(
    runtime_class: Any, convert: Any, obj: dict[str, Any], expected: dict[str, str]
) -> None:
    assert run_health_check(runtime_class, convert(obj)) == expected


@pytest.mark.parametrize("obj, expected", CASES)
def test_health_in_argocd(
    argocd_bin: Path, tmp_path: Path, obj: dict[str, Any], expected: dict[str, str]
) -> None:
    """Argo CD's own CLI runs the health check from argocd-cm-patch.yaml, as shipped."""
    output = argocd_health(argocd_bin, obj, tmp_path)
    assert output == f"STATUS: {expected['status']}\nMESSAGE: {expected['message']}\n"


def test_configmap_patch_embeds_health_lua_verbatim() -> None:
    patch = yaml.safe_load(CM_PATCH.read_text())
    assert patch["kind"] == "ConfigMap"
    assert patch["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert patch["data"][CM_KEY] == HEALTH_LUA.read_text()


@pytest.mark.parametrize(
    "embedded",
    [
        pytest.param(CM_PATCH, id="argocd-cm-patch"),
        pytest.param(ARGOCD_DIR / "application.yaml", id="application"),
    ],
)
def test_docs_show_the_files_as_they_are(embedded: Path) -> None:
    assert f"```yaml\n{embedded.read_text().rstrip()}\n```" in DOC.read_text()
