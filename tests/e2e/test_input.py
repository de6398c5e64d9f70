"""Bad input gets a clear answer: the CRD schema refuses what it can, the rest becomes a
Degraded condition and an Event, and the operator keeps serving the other apps."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.dynamic.exceptions import DynamicApiError

from bluegreen.api.models import KIND
from bluegreen.core import names
from bluegreen.kube.client import Kube
from bluegreen.runtime import handlers, reconciler
from bluegreen.runtime import informer as informer_module
from bluegreen.runtime.informer import Informer, wait_synced
from bluegreen.runtime.store import CHILD_KINDS, Store

from driver import Driver
from kubehelpers import KubeCluster, wait_for
from operator_process import OperatorProcess
from specs import hello

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]


def without(spec: Obj, *path: Any) -> Obj:
    out = copy.deepcopy(spec)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def with_(spec: Obj, value: Any, *path: Any) -> Obj:
    out = copy.deepcopy(spec)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


VALID = hello()
INGRESS = {"host": "a.example.com", "previewHost": "b.example.com"}


@pytest.mark.parametrize(
    ("name", "spec", "complaint"),
    [
        pytest.param("hello", with_(VALID, -1, "replicas"), "replicas", id="negative-replicas"),
        pytest.param("hello", with_(VALID, "two", "replicas"), "replicas", id="replicas-not-int"),
        pytest.param("hello", without(VALID, "template"), "template", id="no-template"),
        pytest.param(
            "hello", with_(VALID, {"spec": {}}, "template"), "containers", id="no-containers"
        ),
        pytest.param("hello", without(VALID, "service"), "service", id="no-service"),
        pytest.param("hello", with_(VALID, [], "service", "ports"), "ports", id="no-ports"),
        pytest.param(
            "hello", with_(VALID, "ExternalName", "service", "type"), "type", id="bad-type"
        ),
        pytest.param(
            "hello", with_(VALID, 70000, "service", "ports", 0, "port"), "port", id="bad-port"
        ),
        pytest.param(
            "hello", with_(VALID, -5, "scaleDownDelaySeconds"), "scaleDownDelay", id="neg-delay"
        ),
        pytest.param("hello", with_(VALID, "yes", "promote"), "promote", id="promote-not-bool"),
        pytest.param(
            "hello",
            with_(VALID, {**INGRESS, "previewHost": "a.example.com"}, "ingress"),
            "previewHost must differ",
            id="same-hosts",
        ),
        pytest.param(
            "hello",
            with_(VALID, [{"port": 80}, {"port": 81}], "service", "ports"),
            "needs a name",
            id="unnamed-ports",
        ),
        pytest.param("a" * 56, VALID, "at most 55", id="name-too-long"),
        pytest.param("1hello", VALID, "DNS-1035", id="name-starts-with-digit"),
        pytest.param("hello-preview", VALID, "must not end in '-preview'", id="name-collides"),
        pytest.param("hello", with_(VALID, 2**31, "replicas"), "replicas", id="replicas-int32"),
        pytest.param(
            "hello", with_(VALID, 2**31, "previewReplicas"), "previewReplicas", id="preview-int32"
        ),
        pytest.param(
            "hello",
            with_(VALID, 300_000_000_000, "scaleDownDelaySeconds"),
            "scaleDownDelaySeconds",
            id="delay-overflowing",
        ),
        pytest.param(
            "hello",
            with_(VALID, "app=web", "template", "metadata", "labels"),
            "labels",
            id="labels-string",
        ),
        pytest.param(
            "hello",
            with_(VALID, {"a": 1}, "template", "metadata", "annotations"),
            "annotations",
            id="annotation-not-string",
        ),
    ],
)
def test_schema_refuses_invalid_apps(
    driver: Driver, namespace: str, bluegreen_crd: None, name: str, spec: Obj, complaint: str
) -> None:
    with pytest.raises(DynamicApiError) as refused:
        driver.create_app(namespace, name, spec)
    assert refused.value.status == 422
    assert complaint in str(refused.value.body)


def test_what_the_schema_cannot_catch_is_degraded_and_others_keep_being_served(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    broken = hello()
    broken["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 70000}]
    driver.create_app(namespace, "broken", broken)
    driver.create_app(namespace, "fine", hello())

    app = driver.wait_app(namespace, "broken", phase="Degraded")
    assert "Deployment broken-blue was refused by the API server" in app["status"]["message"]
    assert "containerPort" in app["status"]["message"]
    driver.wait_app(namespace, "fine", phase="Healthy")
    wait_for(
        lambda: driver.events(namespace, "broken", "ChildRejected"),
        timeout=10,
        what="a Warning Event on the broken app",
    )

    # Fixing the spec heals it.
    driver.patch_spec(namespace, "broken", {"template": hello()["template"]})
    driver.wait_app(namespace, "broken", phase="Healthy", activeColor="blue")


def test_a_converged_app_costs_no_write(
    driver: Driver, namespace: str, operator: OperatorProcess, kube_cluster: KubeCluster
) -> None:
    driver.create_app(namespace, "steady", hello(ingress=INGRESS, previewReplicas=1, promote=False))
    driver.wait_app(namespace, "steady", phase="Healthy")
    operator.stop()

    with kube_cluster.api_client() as api:
        kube = Kube(api)
        store = Store()
        informers = [
            Informer(kube, store, kind, namespace, handlers.OURS, on_event=lambda *_: None)
            for kind in CHILD_KINDS
        ]
        for informer in informers:
            informer.start()
        assert wait_synced(informers, timeout=30)
        app = kube.get(KIND, namespace, "steady")
        assert app is not None
        store.put(KIND, app)
        before = dict(kube.requests)
        outcome = reconciler.reconcile(kube, store, namespace, "steady")
        after = dict(kube.requests)
        for informer in informers:
            informer.stop()

    assert outcome.failures == []
    assert outcome.done == []
    # Planned from what the watches delivered: not one request, neither read nor write.
    assert after == before


def nested(depth: int) -> Obj:
    node: Obj = {"leaf": "x"}
    for _ in range(depth):
        node = {"n": node}
    return node


@pytest.fixture
def room_for_deep_objects() -> Iterator[None]:
    """This test process parses the deep object too (the client serializes and reads it)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)
    yield
    sys.setrecursionlimit(limit)


@pytest.mark.usefixtures("room_for_deep_objects")
@pytest.mark.parametrize("depth", [1500, 9990], ids=["1500-levels", "the-api-server-limit"])
def test_a_deeply_nested_app_is_refused_on_its_own_and_never_stops_the_operator(
    driver: Driver, namespace: str, operator: OperatorProcess, depth: int
) -> None:
    """JSON nested 1,500 levels deep (up to Go's limit of 10,000) is accepted by the API
    server; before, it made the operator's watch raise RecursionError and the process exit,
    at every restart."""
    driver.create_app(namespace, "fine", hello())
    driver.wait_app(namespace, "fine", phase="Healthy")

    deep = hello()
    deep["template"]["spec"]["affinity"] = nested(depth)
    driver.create_app(namespace, "deep", deep)

    app = driver.wait_app(namespace, "deep", phase="Degraded")
    assert "nests deeper than 64 levels" in app["status"]["message"]
    degraded = next(c for c in app["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "InvalidSpec"
    wait_for(lambda: driver.events(namespace, "deep", "InvalidSpec"), timeout=10, what="an Event")
    assert driver.deployment(namespace, "deep-blue") is None

    # The process lives on and keeps serving the other app, after a restart too.
    for version in ("v2", "v3"):
        assert operator.proc is not None and operator.proc.poll() is None, operator.tail()
        driver.patch_spec(namespace, "fine", {"template": hello(version)["template"]})
        driver.wait_app(namespace, "fine", phase="Paused")
        operator.kill()
        operator.start()
    assert "RecursionError" not in operator.tail(10_000)


def labelled_service(name: str) -> dict[str, Any]:
    """A Service the operator's watches select (its label), owned by no app."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {names.LABEL_MANAGED_BY: names.MANAGER}},
        "spec": {"ports": [{"port": 80}]},
    }


def test_a_listing_larger_than_a_page_is_read_whole_from_the_real_api_server(
    driver: Driver, namespace: str, kube_cluster: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists come in pages (limit and continue): with pages of 2, the 7 labelled Services of
    a namespace are all in the store, and the watch resumes from the listing's version."""
    monkeypatch.setattr(informer_module, "LIST_PAGE_SIZE", 2)
    wanted = {f"paged-{i}" for i in range(7)}
    for name in sorted(wanted):
        driver.create(namespace, labelled_service(name))
    with kube_cluster.api_client() as api:
        kube = Kube(api)
        store = Store()
        watcher = Informer(kube, store, "Service", namespace, handlers.OURS, lambda *_: None)
        watcher.start()
        try:
            assert wait_synced([watcher], timeout=30)
            assert kube.requests["GET"] == 4  # 2 + 2 + 2 + 1
            held = {name for name in wanted if store.get("Service", namespace, name)}
            assert held == wanted
            driver.create(namespace, labelled_service("later"))
            wait_for(
                lambda: store.get("Service", namespace, "later"),
                timeout=15,
                what="the watch after the paged listing to see a new Service",
            )
        finally:
            watcher.stop()
