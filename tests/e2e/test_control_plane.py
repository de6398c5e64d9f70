"""Smoke tests of the local control plane: each checks a behaviour the operator relies on
against the real API server, controller-manager, scheduler and kwok."""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from kubehelpers import KubeCluster, wait_for

pytestmark = pytest.mark.e2e

CLUSTER_SH = Path(__file__).resolve().parents[2] / "hack" / "cluster.sh"
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")


@pytest.fixture
def api(kube_cluster: KubeCluster) -> Iterator[kubernetes.client.ApiClient]:
    with kube_cluster.api_client() as client:
        yield client


def deployment(name: str, labels: dict[str, str], replicas: int = 3) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.k8s.io/pause:3.10",
                            "ports": [{"containerPort": 8080}],
                        }
                    ]
                },
            },
        },
    }


def available_replicas(apps: kubernetes.client.AppsV1Api, ns: str, name: str) -> int:
    return apps.read_namespaced_deployment_status(name, ns).status.available_replicas or 0


def test_three_fake_nodes_are_ready(api: kubernetes.client.ApiClient) -> None:
    nodes = kubernetes.client.CoreV1Api(api).list_node(label_selector="type=kwok").items
    ready = [
        n.metadata.name
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    assert len(ready) >= 3, f"Ready kwok nodes: {ready}"


def test_cluster_sh_nodes_adds_ready_kwok_nodes(api: kubernetes.client.ApiClient) -> None:
    """`hack/cluster.sh nodes N`, the benchmarks' extra pod capacity: one node more, Ready,
    for as many pods as the first three hold."""
    core = kubernetes.client.CoreV1Api(api)
    count = len(core.list_node(label_selector="type=kwok").items)
    added = f"kwok-node-{count}"
    try:
        subprocess.run(
            [str(CLUSTER_SH), "nodes", str(count + 1)], check=True, capture_output=True, timeout=120
        )
        node = core.read_node(added)
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        assert node.status.allocatable["pods"] == "110"
    finally:
        try:
            core.delete_node(added)
        except ApiException as exc:
            if exc.status != 404:
                raise


def test_deployment_becomes_available(api: kubernetes.client.ApiClient, namespace: str) -> None:
    apps = kubernetes.client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", {"app": "web"}))

    wait_for(
        lambda: available_replicas(apps, namespace, "web") == 3,
        what="deployment web to have 3 available replicas",
    )
    status = apps.read_namespaced_deployment_status("web", namespace).status
    assert (status.replicas, status.ready_replicas, status.updated_replicas) == (3, 3, 3)

    pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace).items
    assert len(pods) == 3
    for pod in pods:
        assert pod.spec.node_name, f"{pod.metadata.name} was not scheduled"
        assert pod.status.phase == "Running"
        assert ipaddress.ip_address(pod.status.pod_ip) in POD_CIDR


def ready_endpoint_pods(discovery: kubernetes.client.DiscoveryV1Api, ns: str, svc: str) -> set[str]:
    slices = discovery.list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={svc}"
    ).items
    return {
        ep.target_ref.name
        for s in slices
        for ep in s.endpoints or []
        if ep.conditions and ep.conditions.ready and ep.target_ref
    }


def pod_names(core: kubernetes.client.CoreV1Api, ns: str, selector: str) -> set[str]:
    return {p.metadata.name for p in core.list_namespaced_pod(ns, label_selector=selector).items}


def test_service_endpointslices_follow_the_selector(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(api)
    core = kubernetes.client.CoreV1Api(api)
    discovery = kubernetes.client.DiscoveryV1Api(api)
    for color in ("blue", "green"):
        apps.create_namespaced_deployment(
            namespace, deployment(color, {"app": "shop", "color": color})
        )
    for color in ("blue", "green"):
        wait_for(
            lambda color=color: available_replicas(apps, namespace, color) == 3,
            what=f"deployment {color} to be available",
        )
    blue = pod_names(core, namespace, "color=blue")
    green = pod_names(core, namespace, "color=green")
    assert len(blue) == len(green) == 3

    svc = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "shop"},
            "spec": {
                "selector": {"app": "shop", "color": "blue"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
    )
    assert ipaddress.ip_address(svc.spec.cluster_ip) in SERVICE_CIDR
    wait_for(
        lambda: ready_endpoint_pods(discovery, namespace, "shop") == blue,
        what="the EndpointSlices of service shop to list the 3 blue pods",
    )

    core.patch_namespaced_service(
        "shop", namespace, {"spec": {"selector": {"app": "shop", "color": "green"}}}
    )
    wait_for(
        lambda: ready_endpoint_pods(discovery, namespace, "shop") == green,
        what="the EndpointSlices of service shop to move to the 3 green pods",
    )


def test_garbage_collector_deletes_owned_objects(
    api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for i in range(3):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"child-{i}", "ownerReferences": [ref]}}
        )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "unrelated"}})

    core.delete_namespaced_config_map("owner", namespace)  # background propagation

    def names() -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}

    wait_for(
        lambda: not {n for n in names() if n.startswith("child-")},
        what="the garbage collector to delete the owner's children",
    )
    assert "unrelated" in names()


@pytest.fixture
def smoke_crd(api: kubernetes.client.ApiClient) -> Iterator[dict[str, str]]:
    """A throwaway namespaced CRD in group smoke.test.dev with a status subresource; names
    are unique so concurrent sessions do not collide."""
    ext = kubernetes.client.ApiextensionsV1Api(api)
    suffix = secrets.token_hex(3)
    names = {
        "group": "smoke.test.dev",
        "version": "v1",
        "plural": f"gadgets{suffix}",
        "kind": f"Gadget{suffix.upper()}",
    }
    name = f"{names['plural']}.{names['group']}"
    ext.create_custom_resource_definition(
        {
            "metadata": {"name": name},
            "spec": {
                "group": names["group"],
                "scope": "Namespaced",
                "names": {"plural": names["plural"], "kind": names["kind"]},
                "versions": [
                    {
                        "name": names["version"],
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"size": {"type": "integer"}},
                                    },
                                    "status": {
                                        "type": "object",
                                        "properties": {"phase": {"type": "string"}},
                                    },
                                },
                            }
                        },
                    }
                ],
            },
        }
    )
    try:
        yield names
    finally:
        ext.delete_custom_resource_definition(name)


def test_crd_status_subresource(
    api: kubernetes.client.ApiClient, namespace: str, smoke_crd: dict[str, str]
) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    crd_name = f"{smoke_crd['plural']}.{smoke_crd['group']}"

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(crd_name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, what=f"CRD {crd_name} to be Established")

    gvp = (smoke_crd["group"], smoke_crd["version"], namespace, smoke_crd["plural"])
    body = {
        "apiVersion": f"{smoke_crd['group']}/{smoke_crd['version']}",
        "kind": smoke_crd["kind"],
        "metadata": {"name": "one"},
        "spec": {"size": 1},
        "status": {"phase": "IgnoredOnCreate"},
    }
    created = wait_for(
        lambda: custom.create_namespaced_custom_object(*gvp, body),
        what="the first custom resource to be accepted",
    )
    # with a status subresource the main resource ignores status ...
    assert "status" not in created or not created["status"].get("phase")

    patched = custom.patch_namespaced_custom_object_status(
        *gvp, "one", {"status": {"phase": "Ready"}, "spec": {"size": 99}}
    )
    # ... and /status changes status only
    assert patched["status"]["phase"] == "Ready"
    assert patched["spec"]["size"] == 1

    custom.patch_namespaced_custom_object(*gvp, "one", {"status": {"phase": "Lost"}})
    stored = custom.get_namespaced_custom_object(*gvp, "one")
    assert stored["status"]["phase"] == "Ready"
    assert stored["metadata"]["generation"] == 1


def sa_client(kube_cluster: KubeCluster, token: str) -> kubernetes.client.ApiClient:
    """A client that authenticates with a bearer token only (no admin certificate)."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kube_cluster.kubeconfig), client_configuration=config
    )
    config.cert_file = None
    config.key_file = None
    config.api_key = {"authorization": f"Bearer {token}"}
    return kubernetes.client.ApiClient(config)


def test_serviceaccount_without_rbac_is_forbidden(
    kube_cluster: KubeCluster, api: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    with sa_client(kube_cluster, token) as sa_api:
        # authenticated as the ServiceAccount (not anonymous, not rejected with 401) ...
        review = kubernetes.client.AuthenticationV1Api(sa_api).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"

        # ... but RBAC grants it nothing
        sa_core = kubernetes.client.CoreV1Api(sa_api)
        with pytest.raises(ApiException) as denied:
            sa_core.list_namespaced_config_map(namespace)
        assert denied.value.status == 403

        # and a RoleBinding is what makes the same request pass
        rbac = kubernetes.client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "read-configmaps"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "nobody-reads-configmaps"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-configmaps",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        )
        wait_for(
            lambda: sa_core.list_namespaced_config_map(namespace),
            timeout=30,
            what="the RoleBinding to take effect",
        )
        with pytest.raises(ApiException) as still_denied:
            sa_core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403
