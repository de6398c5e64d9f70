"""The pure builders of children, and how an update keeps what others own."""

from __future__ import annotations

from bluegreen.api.models import BlueGreenAppSpec
from bluegreen.core import desired, names
from bluegreen.core.desired import Owner

OWNER = Owner(name="demo", namespace="shop", uid="uid-1")


def spec(**fields: object) -> BlueGreenAppSpec:
    base = {
        "template": {"spec": {"containers": [{"name": "app", "image": "hello:1"}]}},
        "service": {"ports": [{"port": 80}]},
        "ingress": {"host": "a.example.com", "previewHost": "b.example.com"},
    }
    return BlueGreenAppSpec.model_validate({**base, **fields})


def live_ingress(annotations: dict[str, str]) -> dict[str, object]:
    ingress_spec = spec(
        ingress={
            "host": "a.example.com",
            "previewHost": "b.example.com",
            "annotations": annotations,
        }
    )
    obj = desired.stamped(desired.ingress(OWNER, "prod", ingress_spec))
    obj["metadata"].update(resourceVersion="42", uid="ing-uid", managedFields=[{"manager": "x"}])
    obj["metadata"]["annotations"]["someone.else/note"] = "kept"
    obj["metadata"]["labels"]["someone.else/label"] = "kept"
    return obj


def test_update_removes_an_annotation_the_operator_set_and_no_longer_wants() -> None:
    live = live_ingress({"nginx.ingress.kubernetes.io/rewrite-target": "/"})
    want = desired.stamped(desired.ingress(OWNER, "prod", spec()))

    body = desired.for_update(want, live)

    annotations = body["metadata"]["annotations"]
    assert "nginx.ingress.kubernetes.io/rewrite-target" not in annotations
    assert annotations["someone.else/note"] == "kept"
    assert body["metadata"]["labels"]["someone.else/label"] == "kept"
    assert body["metadata"]["resourceVersion"] == "42"  # the PUT is conditional
    assert "managedFields" not in body["metadata"]


def test_update_keeps_what_the_api_server_allocated() -> None:
    live = desired.stamped(desired.service(OWNER, "prod", spec(), "blue"))
    live["metadata"]["resourceVersion"] = "7"
    live["spec"].update(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"], sessionAffinity="None")
    want = desired.stamped(desired.service(OWNER, "prod", spec(), "green"))

    body = desired.for_update(want, live)

    assert body["spec"]["clusterIP"] == "10.96.0.10"
    assert body["spec"]["selector"][names.LABEL_COLOR] == "green"
    assert body["metadata"]["ownerReferences"] == [OWNER.reference()]


def test_stamp_changes_only_with_what_is_wanted() -> None:
    one = desired.service(OWNER, "prod", spec(), "blue")
    assert desired.applied_hash(one) == desired.applied_hash(desired.stamped(one))
    other = desired.service(OWNER, "prod", spec(), "green")
    assert desired.applied_hash(one) != desired.applied_hash(other)


def test_preview_service_never_claims_the_prod_node_port() -> None:
    node_port = spec(service={"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})
    prod = desired.service(OWNER, "prod", node_port, "blue")
    preview = desired.service(OWNER, "preview", node_port, "blue")
    assert prod["spec"]["ports"][0]["nodePort"] == 30080
    assert "nodePort" not in preview["spec"]["ports"][0]
