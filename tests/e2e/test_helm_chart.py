"""The Helm chart (charts/bluegreen-operator), with Helm built from its pinned module
(hack/build-go-tool.sh helm): it lints; its render holds exactly deploy/'s objects (and,
namespaced, the namespaced overlay's), so the two cannot drift; its values schema refuses
what the templates cannot serve; and, on the real node with the image `make image` built,
`helm install` runs the operator's pods, `helm upgrade` rolls a changed value out without
leaving the apps without a leader, and `helm uninstall` leaves only the CRD and the Lease.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import incluster
from incluster import CHART, RELEASE, SYSTEM, kubectl, run_helm
from kubehelpers import KubeCluster

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
# Helm's standard labels, which the chart adds to deploy/'s own.
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def render(helm: Path, *values: str) -> list[Obj]:
    out = run_helm(
        helm, "template", RELEASE, str(CHART), "-n", SYSTEM, "--include-crds", *values
    ).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def kustomize(path: Path) -> list[Obj]:
    return [o for o in yaml.safe_load_all(kubectl("kustomize", str(path))) if o]


def by_identity(objects: list[Obj]) -> dict[tuple[str, str, str | None], Obj]:
    """Objects by kind, name and namespace, without Helm's labels and without the namespace
    kustomize writes on cluster-scoped objects (the API server ignores it there)."""
    out = {}
    for obj in objects:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in HELM_LABELS}
        meta.pop("labels", None)
        if labels:
            meta["labels"] = labels
        if obj["kind"] in CLUSTER_SCOPED:
            meta.pop("namespace", None)
        if obj["kind"] == "Deployment":
            # The namespaced overlay's patch puts POD_NAMESPACE first: the same environment
            # (neither refers to the other).
            for container in obj["spec"]["template"]["spec"]["containers"]:
                container["env"].sort(key=lambda e: e["name"])
        out[(obj["kind"], meta["name"], meta.get("namespace"))] = obj
    return out


def assert_same_objects(chart: list[Obj], shipped: list[Obj]) -> None:
    ours, theirs = by_identity(chart), by_identity(shipped)
    assert sorted(ours, key=str) == sorted(theirs, key=str)
    for key, obj in theirs.items():
        if key[0] == "CustomResourceDefinition":
            # Helm installs crds/ as it is (not a template): deploy/'s kustomize label is the
            # one difference; the CRD itself is the same file (crds/ links to it).
            obj = copy.deepcopy(obj)
            del obj["metadata"]["labels"]["app.kubernetes.io/part-of"]
            if not obj["metadata"]["labels"]:
                del obj["metadata"]["labels"]
        assert ours[key] == obj, (
            f"{key} differs:\n{yaml.safe_dump(ours[key])}\n---\n{yaml.safe_dump(obj)}"
        )


# ---------------------------------------------------------------- the chart itself


def test_the_chart_lints_strictly(helm: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_the_default_render_holds_deploys_objects(helm: Path, kube_cluster: KubeCluster) -> None:
    """deploy/ less its Namespace (Helm's --create-namespace makes it), and with
    namespace.create the Namespace too, labels and all."""
    shipped = kustomize(incluster.DEPLOY)
    without_namespace = [o for o in shipped if o["kind"] != "Namespace"]
    assert_same_objects(render(helm), without_namespace)
    assert_same_objects(render(helm, "--set", "namespace.create=true"), shipped)


def test_the_namespaced_render_holds_the_namespaced_overlays_objects(
    helm: Path, kube_cluster: KubeCluster
) -> None:
    shipped = kustomize(incluster.DEPLOY / "overlays" / "namespaced")
    without_namespace = [o for o in shipped if o["kind"] != "Namespace"]
    assert_same_objects(render(helm, "--set", "namespaced=true"), without_namespace)


def deployment_of(objects: list[Obj]) -> Obj:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment


def test_values_reach_the_objects(helm: Path, tmp_path: Path) -> None:
    values = {
        "image": {"repository": "registry.example.com/bgo", "tag": "1.2.3", "pullPolicy": "Always"},
        "replicas": 3,
        "leaderElection": {"leaseDuration": 30, "renewDeadline": 20, "retryPeriod": 4},
        "watchNamespaces": ["shop", "blog"],
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "admissionPolicy": {"enabled": False},
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists"}],
        "extraArgs": ["--verbose"],
        "extraEnv": [{"name": "BLUEGREEN_RESYNC_SECONDS", "value": "600"}],
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"memory": "1Gi"}},
    }
    (tmp_path / "values.yaml").write_text(json.dumps(values))
    objects = render(helm, "-f", str(tmp_path / "values.yaml"))
    kinds = {(o["kind"], o["metadata"].get("namespace")) for o in objects}
    assert ("ClusterRoleBinding", None) not in kinds
    assert {("RoleBinding", "shop"), ("RoleBinding", "blog"), ("ServiceMonitor", SYSTEM)} <= kinds
    assert not {k for k, _ in kinds if k.startswith("ValidatingAdmissionPolicy")}
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    spec = deployment_of(objects)["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 3
    assert container["image"] == "registry.example.com/bgo:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"][-6:] == [
        "--lease-duration=30",
        "--renew-deadline=20",
        "--retry-period=4",
        "--namespace=shop",
        "--namespace=blog",
        "--verbose",
    ]
    assert {"name": "BLUEGREEN_RESYNC_SECONDS", "value": "600"} in container["env"]
    assert container["resources"] == values["resources"]
    assert pod["nodeSelector"] == {"pool": "system"} and pod["tolerations"] == values["tolerations"]


@pytest.mark.parametrize(
    "value, complaint",
    [
        pytest.param("replicas=-1", "/replicas", id="negative-replicas"),
        pytest.param("image.pullPolicy=Sometimes", "/image/pullPolicy", id="pull-policy"),
        pytest.param("watchNamespaces[0]=Not_A_Name", "/watchNamespaces/0", id="namespace-name"),
        pytest.param("unknownValue=1", "unknownValue", id="unknown-key"),
    ],
)
def test_the_values_schema_refuses_what_cannot_be_served(
    helm: Path, value: str, complaint: str
) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "--set", value, check=False)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def value_leaves(values: Obj, schema: Obj, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Each value with its default: nested where the schema lists properties, else whole."""
    for key, sub in schema["properties"].items():
        if "properties" in sub:
            yield from value_leaves(values[key], sub, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", values[key]


def test_the_values_table_is_values_yaml() -> None:
    """charts/bluegreen-operator/README.md's table names every value with its default, and
    values.schema.json knows every value (it refuses unknown keys)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]) == set(values)
    readme = (CHART / "README.md").read_text()
    table = readme.split("<!-- values-table:start -->")[1].split("<!-- values-table:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        key, default = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:2])
        rows[key] = json.loads(default)
    assert rows == dict(value_leaves(values, schema))
