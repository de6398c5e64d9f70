"""The hello example: its manifests are valid BlueGreenApps and tell the intended story.

v1 goes live; v2 changes only the version (image and VERSION) and waits as a preview;
v2-promoted changes only promote. The Argo CD Application points at a manifest that exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen.api.models import GROUP, KIND, VERSION, BlueGreenAppSpec

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
MANIFESTS = ["bluegreenapp-v1.yaml", "bluegreenapp-v2.yaml", "bluegreenapp-v2-promoted.yaml"]


def load(name: str) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((HELLO / name).read_text())
    return manifest


def differences(a: Any, b: Any, path: str = "") -> set[str]:
    """The paths of every leaf where ``a`` and ``b`` differ (``spec.x[0].y``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: set[str] = set()
        for key in a.keys() | b.keys():
            found |= differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        found = set()
        for index, (left, right) in enumerate(zip(a, b, strict=True)):
            found |= differences(left, right, f"{path}[{index}]")
        return found
    return set() if a == b else {path}


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in MANIFESTS])
def test_manifest_is_a_valid_bluegreenapp(name: str) -> None:
    manifest = load(name)
    assert manifest["apiVersion"] == f"{GROUP}/{VERSION}"
    assert manifest["kind"] == KIND
    assert manifest["metadata"] == {"name": "hello"}
    spec = BlueGreenAppSpec.model_validate(manifest["spec"])

    assert spec.scaleDownDelaySeconds == 30
    assert spec.previewReplicas is None  # the preview runs at full size: see the comment
    assert spec.service.type == "ClusterIP"
    assert [(p.port, p.targetPort) for p in spec.service.ports] == [(80, 5000)]
    assert spec.ingress is not None
    assert (spec.ingress.host, spec.ingress.previewHost) == (
        "hello.example.com",
        "hello-preview.example.com",
    )


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in MANIFESTS])
def test_container_serves_its_version_on_5000_and_is_probed(name: str) -> None:
    hello = container(load(name))
    env = {item["name"]: item["value"] for item in hello["env"]}
    assert hello["image"].endswith(f":{env['VERSION']}")
    assert hello["ports"] == [{"name": "http", "containerPort": 5000}]
    assert hello["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize(
    "before, after, changed, promote",
    [
        pytest.param(
            "bluegreenapp-v1.yaml",
            "bluegreenapp-v2.yaml",
            {
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[0].env[0].value",
                "spec.promote",
            },
            False,
            id="v1-to-v2-new-version-waits-as-preview",
        ),
        pytest.param(
            "bluegreenapp-v2.yaml",
            "bluegreenapp-v2-promoted.yaml",
            {"spec.promote"},
            True,
            id="v2-to-promoted-only-promote",
        ),
    ],
)
def test_each_step_changes_only_what_it_means_to(
    before: str, after: str, changed: set[str], promote: bool
) -> None:
    assert differences(load(before), load(after)) == changed
    assert load(after)["spec"]["promote"] is promote


def test_the_first_version_goes_live_without_a_promotion_step() -> None:
    assert load("bluegreenapp-v1.yaml")["spec"]["promote"] is True


def test_argocd_application_points_at_an_example_manifest() -> None:
    application = yaml.safe_load((REPO / "deploy" / "argocd" / "application.yaml").read_text())
    source = application["spec"]["source"]
    assert (REPO / source["path"] / source["directory"]["include"]).is_file()
    assert application["spec"]["syncPolicy"]["automated"]["selfHeal"] is True


@pytest.mark.parametrize(
    "a, b, expected",
    [
        pytest.param({"x": 1}, {"x": 1}, set(), id="same"),
        pytest.param({"x": {"y": [1, 2]}}, {"x": {"y": [1, 3]}}, {"x.y[1]"}, id="nested-list"),
        pytest.param({"x": 1}, {"z": 1}, {"x", "z"}, id="key-added-and-removed"),
        pytest.param({"x": [1]}, {"x": [1, 2]}, {"x"}, id="list-length"),
    ],
)
def test_differences(a: Any, b: Any, expected: set[str]) -> None:
    assert differences(a, b) == expected


def test_the_hpa_example_targets_the_app_of_the_example() -> None:
    hpa = load("hpa.yaml")
    app = load("bluegreenapp-v1.yaml")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == (f"{GROUP}/{VERSION}", KIND)
    assert target["name"] == app["metadata"]["name"]
    assert "namespace" not in hpa["metadata"]  # applied beside the app, like it


def test_the_gated_manifest_adds_only_checks_to_the_promoted_one() -> None:
    gated, promoted = load("bluegreenapp-v2-gated.yaml"), load("bluegreenapp-v2-promoted.yaml")
    assert differences(gated, promoted) == {"spec.checks"}
    spec = BlueGreenAppSpec.model_validate(gated["spec"])
    http, job = spec.checks
    assert http.http is not None and http.http.bodyContains == "version 2.0.0"
    assert http.http.bodyContains in f"Hello from version {container(gated)['env'][0]['value']}"
    assert (
        job.job is not None
        and "$(PREVIEW_URL)/" in job.job.template["spec"]["containers"][0]["args"]
    )


def test_the_metrics_manifest_adds_only_prometheus_checks_to_the_promoted_one() -> None:
    metrics, promoted = load("bluegreenapp-v2-metrics.yaml"), load("bluegreenapp-v2-promoted.yaml")
    assert differences(metrics, promoted) == {"spec.checks"}
    spec = BlueGreenAppSpec.model_validate(metrics["spec"])
    errors, latency = spec.checks
    assert errors.prometheus is not None and latency.prometheus is not None
    for check in (errors.prometheus, latency.prometheus):
        for placeholder in ("{{namespace}}", "{{app}}", "{{color}}", "{{revision}}"):
            assert placeholder in check.query
        assert check.noData == "Wait"  # a new pod's first scrapes have no rate yet
    assert 'code=~"5.."' in errors.prometheus.query and "or vector(0)" in errors.prometheus.query
    assert "histogram_quantile(0.99" in latency.prometheus.query


def test_the_gateway_manifest_swaps_the_ingress_for_routes_and_nothing_else() -> None:
    routed, plain = load("bluegreenapp-v2-gateway.yaml"), load("bluegreenapp-v2.yaml")
    changed = differences(routed, plain)
    assert changed and all(p.startswith(("spec.ingress", "spec.gateway")) for p in changed), changed
    spec = BlueGreenAppSpec.model_validate(routed["spec"])
    assert spec.ingress is None and spec.gateway is not None
    assert (spec.gateway.hostnames, spec.gateway.previewHostnames) == (
        ["hello.example.com"],
        ["hello-preview.example.com"],
    )
    assert spec.gateway.previewHeader is not None
    assert (spec.gateway.previewHeader.name, spec.gateway.previewHeader.value) == (
        "X-Preview",
        "true",
    )
