"""The store the watches feed: newer states win, deletions stick, a listing replaces what
was held, and only what planning reads is kept."""

from __future__ import annotations

from typing import Any

from bluegreen.core import names
from bluegreen.runtime.store import Store, slim

Obj = dict[str, Any]
NS = "shop"
OURS = names.app_labels("web")


def obj(name: str, rv: int, labels: dict[str, str] | None = None, **fields: Any) -> Obj:
    meta = {"name": name, "namespace": NS, "resourceVersion": str(rv), "labels": labels or OURS}
    return {"metadata": meta, **fields}


def held_version(store: Store, kind: str, name: str) -> str | None:
    found = store.get(kind, NS, name)
    return None if found is None else str(found["metadata"]["resourceVersion"])


def test_an_event_older_than_what_is_held_is_dropped() -> None:
    """The answer to the operator's own write may be newer than the watch's next event."""
    store = Store()
    assert store.put("Service", obj("web", 20))
    assert not store.put("Service", obj("web", 15))
    assert held_version(store, "Service", "web") == "20"
    assert store.put("Service", obj("web", 21))
    assert held_version(store, "Service", "web") == "21"


def test_a_deleted_object_is_not_brought_back_by_a_late_event() -> None:
    store = Store()
    store.put("Deployment", obj("web-blue", 10))
    store.remove("Deployment", obj("web-blue", 12))
    assert not store.put("Deployment", obj("web-blue", 11))
    assert store.get("Deployment", NS, "web-blue") is None
    assert store.put("Deployment", obj("web-blue", 13))  # created again


def test_a_listing_drops_what_was_deleted_meanwhile_but_keeps_what_is_newer() -> None:
    """After a watch expired: objects missing from the listing and older than it are gone;
    one written after the listing was taken (by the operator itself) stays."""
    store = Store()
    store.put("Service", obj("gone", 5))
    store.put("Service", obj("kept", 6))
    store.put("Service", obj("newer", 40))
    store.put(
        "Service",
        {**obj("other-ns", 5), "metadata": {**obj("x", 5)["metadata"], "namespace": "other"}},
    )
    store.replace("Service", NS, [obj("kept", 7)], list_version=30)
    assert store.get("Service", NS, "gone") is None
    assert held_version(store, "Service", "kept") == "7"
    assert held_version(store, "Service", "newer") == "40"
    assert store.get("Service", "other", "x") is not None  # another namespace's listing


def test_endpoints_are_found_by_service_and_replicasets_by_app() -> None:
    store = Store()
    for i, service in enumerate(("web-preview", "web-preview", "web")):
        labels = {**OURS, "kubernetes.io/service-name": service}
        store.put("EndpointSlice", obj(f"{service}-{i}", 1, labels, endpoints=[{"addresses": [i]}]))
    store.put("ReplicaSet", obj("web-blue-abc", 1))
    store.put("ReplicaSet", obj("api-blue-abc", 1, names.app_labels("api")))
    assert len(store.endpoints_of_service(NS, "web-preview")) == 2
    assert len(store.endpoints_of_service(NS, "web")) == 1
    assert [rs["metadata"]["name"] for rs in store.replicasets_of(NS, "web")] == ["web-blue-abc"]
    store.remove(
        "EndpointSlice", obj("web-preview-0", 2, {"kubernetes.io/service-name": "web-preview"})
    )
    assert len(store.endpoints_of_service(NS, "web-preview")) == 1


def test_an_object_without_the_operators_label_is_pinned_not_watched() -> None:
    store = Store()
    store.put("Service", obj("web", 3, {"team": "payments"}))
    assert store.pinned_of(NS, [("Service", "web"), ("Service", "web-preview")]) == [
        ("Service", "web")
    ]
    store.put("Service", obj("web", 4))  # the operator's now: its watch delivers it
    assert store.pinned_of(NS, [("Service", "web")]) == []
    assert held_version(store, "Service", "web") == "4"


def test_only_what_planning_reads_is_kept() -> None:
    managed = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    deployment = obj("web-blue", 1, spec={"replicas": 3})
    deployment["metadata"]["managedFields"] = managed
    assert "managedFields" not in slim("Deployment", deployment)["metadata"]
    assert slim("Deployment", deployment)["spec"] == {"replicas": 3}

    rs = obj(
        "web-blue-abc",
        1,
        spec={"replicas": 3, "template": {"spec": {"containers": [{}] * 5}}},
        status={"replicas": 3, "readyReplicas": 2, "conditions": [{"type": "x"}]},
    )
    assert slim("ReplicaSet", rs)["spec"] == {"replicas": 3}
    assert slim("ReplicaSet", rs)["status"] == {"replicas": 3, "readyReplicas": 2}
    endpoint = {
        "addresses": ["10.0.0.1"],
        "conditions": {"ready": True},
        "nodeName": "n1",
        "targetRef": {"kind": "Pod", "name": "web-blue-abc-1"},
    }
    sliced = slim("EndpointSlice", obj("s", 1, endpoints=[endpoint], ports=[{"port": 80}]))
    assert sliced["endpoints"] == [
        {"conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "web-blue-abc-1"}}
    ]


def test_a_refused_kind_is_known_per_namespace_or_everywhere() -> None:
    store = Store()
    store.refuse("Ingress", "", "ingresses is forbidden")
    assert store.refused("Ingress", NS) == "ingresses is forbidden"
    store.refuse("Ingress", "", None)
    store.refuse("Ingress", "other", "no")
    assert store.refused("Ingress", NS) is None
    assert store.refused("Ingress", "other") == "no"


def test_a_gateway_is_known_missing_only_where_gateways_were_listed() -> None:
    store = Store()
    gateway = {"metadata": {"name": "edge", "namespace": "infra", "resourceVersion": "3"}}
    assert not store.has_listed("Gateway", "infra")  # not listed: nothing is known
    store.replace("Gateway", "infra", [gateway], 3)
    assert store.has_listed("Gateway", "infra") and not store.has_listed("Gateway", "shop")
    assert store.get("Gateway", "infra", "edge") == {"metadata": gateway["metadata"]}
    store.replace("Gateway", "", [], 4)
    assert store.has_listed("Gateway", "shop")  # listed in every namespace
    store.served("Gateway", False)
    assert not store.has_listed("Gateway", "shop")  # no such resource any more
