"""The BlueGreenApp lifecycle, end to end, on the real control plane.

Each test reads as the user's story: given an app, when the spec changes, then what the
operator did, as seen through the API (children, Services' endpoints, status, Events).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from bluegreen.core.revision import revision_of

from driver import Driver, SelectorHistory, pause, refusing_selector
from kubehelpers import KubeCluster, Sampler, wait_for
from operator_process import OperatorProcess
from specs import hello, template

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
APP = "hello"


def pod_uids(driver: Driver, ns: str, color: str) -> set[str]:
    pods = driver.pods(ns, f"bluegreen.dev/app={APP},bluegreen.dev/color={color}")
    return {p["metadata"]["uid"] for p in pods}


def v1_live_and_v2_waiting(driver: Driver, ns: str) -> Obj:
    """The app with v1 live on blue and v2 ready on green, waiting for promotion."""
    driver.create_app(ns, APP, hello())
    driver.wait_app(ns, APP, phase="Healthy")
    return deploy_v2_and_wait_paused(driver, ns)


def deploy_v2_and_wait_paused(driver: Driver, ns: str, **extra: Any) -> Obj:
    driver.patch_spec(ns, APP, {"template": template("v2"), **extra})
    return driver.wait_app(ns, APP, phase="Paused", previewColor="green")


# ---------------------------------------------------------------- 1. create


def test_create_runs_blue_behind_both_services(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    gitops_labels = {"app.kubernetes.io/instance": "argocd-hello", "team": "web"}
    driver.create_app(namespace, APP, hello(replicas=3), labels=gitops_labels)

    app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")

    blue = driver.deployment(namespace, "hello-blue")
    assert blue is not None and blue["status"]["availableReplicas"] == 3
    assert driver.deployment(namespace, "hello-green") is None
    assert driver.selector_color(namespace, "hello") == "blue"
    assert driver.selector_color(namespace, "hello-preview") == "blue"
    assert app["status"]["activeRevision"] == revision_of(template("v1"))
    assert "previewColor" not in app["status"]
    conditions = {c["type"]: c["status"] for c in app["status"]["conditions"]}
    assert conditions == {"Available": "True", "Progressing": "False", "Degraded": "False"}

    for kind, name in [
        ("Deployment", "hello-blue"),
        ("Service", "hello"),
        ("Service", "hello-preview"),
    ]:
        child = driver.get(kind, namespace, name)
        assert child is not None
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "bluegreen-operator"
        assert labels["bluegreen.dev/app"] == APP
        assert "app.kubernetes.io/instance" not in labels and "team" not in labels
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == (
            "BlueGreenApp",
            app["metadata"]["uid"],
            True,
        )
    pods = driver.pods(namespace, "bluegreen.dev/app=hello")
    assert len(pods) == 3
    assert all(p["metadata"]["labels"]["app"] == "hello" for p in pods)  # the user's label stays
    assert {p["metadata"]["labels"]["bluegreen.dev/color"] for p in pods} == {"blue"}

    # Nothing of the operator's bookkeeping lands in the CR's metadata (GitOps drift).
    meta = app["metadata"]
    assert not [k for k in (meta.get("annotations") or {}) if "kopf" in k]
    assert not meta.get("finalizers")
    assert meta["labels"] == gitops_labels


# ---------------------------------------------------------------- 2, 3, 12. preview and promote


class EndpointWatcher(Sampler[set[str]]):
    """Samples the prod Service's ready endpoints continuously during a switch."""

    def __init__(self, driver: Driver, namespace: str, service: str) -> None:
        super().__init__(lambda: driver.ready_endpoint_pods(namespace, service), interval=0)

    @property
    def samples(self) -> list[set[str]]:
        return self.values


def test_new_version_waits_on_preview_then_promote_switches_prod(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello(previewReplicas=1))
    driver.wait_app(namespace, APP, phase="Healthy")
    prod_before = driver.get("Service", namespace, "hello")
    assert prod_before is not None
    blue_pods = pod_uids(driver, namespace, "blue")

    app = deploy_v2_and_wait_paused(driver, namespace)

    assert "spec.promote" in app["status"]["message"]
    assert app["status"]["previewRevision"] == revision_of(template("v2"))
    assert driver.wait_replicas(namespace, "hello-green", 1)  # a small preview
    assert driver.selector_color(namespace, "hello-preview") == "green"
    prod = driver.get("Service", namespace, "hello")
    assert prod is not None
    assert prod["metadata"]["resourceVersion"] == prod_before["metadata"]["resourceVersion"]
    assert pod_uids(driver, namespace, "blue") == blue_pods  # the live color is untouched

    with (
        EndpointWatcher(driver, namespace, "hello") as watcher,
        SelectorHistory(driver, namespace, "hello") as prod_selector,
    ):
        driver.patch_spec(namespace, APP, {"promote": True})
        app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
        wait_for(
            lambda: (
                watcher.samples and all(p.startswith("hello-green-") for p in watcher.samples[-1])
            ),
            timeout=30,
            what="the prod endpoints to list only green pods",
        )

    assert prod_selector.colors == ["blue", "green"]
    assert len(watcher.samples) > 3
    assert all(watcher.samples), "the prod Service had no ready endpoint during the switch"
    green = driver.deployment(namespace, "hello-green")
    assert green is not None and green["spec"]["replicas"] == 2  # scaled up before the switch
    assert driver.selector_color(namespace, "hello") == "green"
    assert app["status"]["activeRevision"] == revision_of(template("v2"))
    assert "previewColor" not in app["status"]
    assert len(driver.events(namespace, APP, "Switched")) == 1

    # The previous color keeps its pods for scaleDownDelaySeconds, then is scaled to 0, kept.
    assert pod_uids(driver, namespace, "blue") == blue_pods
    blue = driver.wait_replicas(namespace, "hello-blue", 0, timeout=30)
    assert blue["metadata"]["labels"]["bluegreen.dev/revision"] == revision_of(template("v1"))


# ---------------------------------------------------------------- 4. changes before promotion


def test_template_changed_twice_before_promotion_updates_only_the_preview(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Healthy")
    blue_pods = pod_uids(driver, namespace, "blue")
    blue_before = driver.deployment(namespace, "hello-blue")
    assert blue_before is not None
    deploy_v2_and_wait_paused(driver, namespace)

    driver.patch_spec(namespace, APP, {"template": template("v3")})
    app = driver.wait_app(
        namespace, APP, phase="Paused", previewRevision=revision_of(template("v3"))
    )

    assert app["status"]["previewColor"] == "green"
    green = driver.deployment(namespace, "hello-green")
    assert green is not None
    assert green["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v3")
    blue = driver.deployment(namespace, "hello-blue")
    assert blue is not None
    assert blue["metadata"]["generation"] == blue_before["metadata"]["generation"]
    assert pod_uids(driver, namespace, "blue") == blue_pods
    assert driver.selector_color(namespace, "hello") == "blue"


def test_reverting_to_the_live_version_abandons_the_preview(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    v1_live_and_v2_waiting(driver, namespace)

    driver.patch_spec(namespace, APP, {"template": template("v1")})
    app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")

    assert "previewColor" not in app["status"]
    assert driver.selector_color(namespace, "hello-preview") == "blue"
    assert driver.selector_color(namespace, "hello") == "blue"
    driver.wait_replicas(namespace, "hello-green", 0, timeout=10)  # at once: it never served


# ---------------------------------------------------------------- 5. rollback


def promote_v2(driver: Driver, ns: str, delay: int) -> None:
    driver.create_app(ns, APP, hello(promote=True, scaleDownDelaySeconds=delay))
    driver.wait_app(ns, APP, phase="Healthy", activeColor="blue")
    driver.patch_spec(ns, APP, {"template": template("v2")})
    driver.wait_app(ns, APP, phase="Healthy", activeColor="green")


def test_rollback_within_the_delay_flips_back_with_no_new_pods(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    promote_v2(driver, namespace, delay=120)
    blue_pods = pod_uids(driver, namespace, "blue")
    assert len(blue_pods) == 2
    assert driver.app(namespace, APP)["status"]["previousRevision"] == revision_of(template("v1"))

    driver.patch_spec(namespace, APP, {"template": template("v1")})
    app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue", timeout=20)

    assert app["status"]["activeRevision"] == revision_of(template("v1"))
    assert driver.selector_color(namespace, "hello") == "blue"
    assert pod_uids(driver, namespace, "blue") == blue_pods  # the very same pods
    assert len(driver.events(namespace, APP, "Switched")) == 2


def test_rollback_after_scale_down_scales_up_then_switches(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    promote_v2(driver, namespace, delay=1)
    driver.wait_replicas(namespace, "hello-blue", 0, timeout=30)

    driver.patch_spec(namespace, APP, {"template": template("v1")})
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")

    blue = driver.deployment(namespace, "hello-blue")
    assert blue is not None and blue["status"]["availableReplicas"] == 2
    assert driver.selector_color(namespace, "hello") == "blue"


# ---------------------------------------------------------------- 6, 7. in-place changes


def test_replicas_change_is_applied_in_place(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello(replicas=2))
    driver.wait_app(namespace, APP, phase="Healthy")
    blue_pods = pod_uids(driver, namespace, "blue")

    driver.patch_spec(namespace, APP, {"replicas": 4})
    driver.wait_replicas(namespace, "hello-blue", 4)
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")

    assert blue_pods < pod_uids(driver, namespace, "blue")  # no pod replaced
    assert driver.deployment(namespace, "hello-green") is None
    assert not driver.events(namespace, APP, "Switched")


def test_service_and_ingress_changes_are_patched_in_place(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    ingress = {"host": "hello.example.com", "previewHost": "hello-preview.example.com"}
    driver.create_app(namespace, APP, hello(ingress=ingress))
    driver.wait_app(namespace, APP, phase="Healthy")
    prod_uid = driver.get("Service", namespace, "hello")["metadata"]["uid"]  # type: ignore[index]

    driver.patch_spec(
        namespace,
        APP,
        {
            "service": {"type": "NodePort", "ports": [{"port": 8080, "targetPort": 5000}]},
            "ingress": {**ingress, "host": "www.example.com", "className": "nginx"},
        },
    )

    def patched() -> bool:
        services = [driver.get("Service", namespace, n) for n in ("hello", "hello-preview")]
        ingresses = [driver.get("Ingress", namespace, n) for n in ("hello", "hello-preview")]
        return all(
            s is not None
            and s["spec"]["type"] == "NodePort"
            and s["spec"]["ports"][0]["port"] == 8080
            for s in services
        ) and all(i is not None and i["spec"].get("ingressClassName") == "nginx" for i in ingresses)

    wait_for(patched, timeout=30, what="both Services and Ingresses to be patched")
    prod = driver.get("Service", namespace, "hello")
    assert prod is not None and prod["metadata"]["uid"] == prod_uid  # patched, not replaced
    prod_ingress = driver.get("Ingress", namespace, "hello")
    assert prod_ingress is not None
    assert prod_ingress["spec"]["rules"][0]["host"] == "www.example.com"
    backend = prod_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "hello", "port": {"number": 8080}}

    driver.patch_spec(namespace, APP, {"ingress": None})
    wait_for(
        lambda: (
            driver.get("Ingress", namespace, "hello") is None
            and driver.get("Ingress", namespace, "hello-preview") is None
        ),
        timeout=30,
        what="the Ingresses to be removed with spec.ingress",
    )


# ---------------------------------------------------------------- 8. deletion


def test_deleting_the_app_removes_its_children(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Healthy")

    driver.delete("BlueGreenApp", namespace, APP)

    def all_gone() -> bool:
        return all(
            driver.get(kind, namespace, name) is None
            for kind, name in [
                ("BlueGreenApp", APP),
                ("Deployment", "hello-blue"),
                ("Service", "hello"),
                ("Service", "hello-preview"),
            ]
        )

    wait_for(all_gone, timeout=60, what="the app and its children to be deleted")


# ---------------------------------------------------------------- 9. objects it does not own

# A Service of the prod Service's name that is not the operator's (no label, no owner).
SOMEONE_ELSES_SERVICE: Obj = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "hello", "labels": {"owner": "someone-else"}},
    "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]},
}


def test_an_existing_object_with_a_childs_name_is_left_alone(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    theirs = driver.create(namespace, SOMEONE_ELSES_SERVICE)

    driver.create_app(namespace, APP, hello())
    app = driver.wait_app(namespace, APP, phase="Degraded")

    assert "Service hello" in app["status"]["message"]
    degraded = next(c for c in app["status"]["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ChildConflict")
    wait_for(lambda: driver.events(namespace, APP, "ChildConflict"), timeout=10, what="an Event")
    pause(2)
    after = driver.get("Service", namespace, "hello")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")
    # The rest of the app is still served.
    assert driver.deployment(namespace, "hello-blue") is not None
    assert driver.selector_color(namespace, "hello-preview") == "blue"


def test_an_app_blocked_by_someone_elses_object_heals_within_seconds_of_its_deletion(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    """No watch of the operator sees an object without its label go: the blocked app looks
    again every few seconds (it healed only at the 300 s resync before)."""
    driver.create(namespace, SOMEONE_ELSES_SERVICE)
    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Degraded")
    pause(2)  # past the first passes: only a later look can see the deletion

    driver.delete("Service", namespace, "hello")
    started = time.monotonic()
    app = driver.wait_app(namespace, APP, timeout=15, phase="Healthy")
    print(f"healed {time.monotonic() - started:.1f}s after the delete")
    prod = driver.get("Service", namespace, "hello")
    assert prod is not None and prod["metadata"].get("ownerReferences"), prod
    assert app["status"]["activeColor"] == driver.selector_color(namespace, "hello")


# ---------------------------------------------------------------- 11. restarts


def test_operator_killed_between_preview_and_switch_resumes_and_switches_once(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    v1_live_and_v2_waiting(driver, namespace)

    with SelectorHistory(driver, namespace, "hello") as prod:
        operator.kill()
        driver.patch_spec(namespace, APP, {"promote": True})
        pause(1)
        assert driver.selector_color(namespace, "hello") == "blue"  # nobody switched it
        operator.start()

        driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
        operator.kill()
        operator.start()  # and once more right after the switch
        pause(3)
        app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
        driver.wait_replicas(namespace, "hello-blue", 0, timeout=30)

    assert prod.colors == ["blue", "green"]  # one switch, no flap
    assert app["status"]["activeRevision"] == revision_of(template("v2"))
    assert len(driver.events(namespace, APP, "Switched")) == 1


def test_operator_killed_mid_rollout_converges(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello(promote=True))
    driver.wait_app(namespace, APP, phase="Healthy")
    with SelectorHistory(driver, namespace, "hello") as prod:
        driver.patch_spec(namespace, APP, {"template": template("v2")})
        wait_for(
            lambda: driver.deployment(namespace, "hello-green"), timeout=30, what="the preview"
        )
        operator.kill()  # somewhere between deploying the preview and the switch
        operator.start()
        app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
        pause(2)

    assert prod.colors == ["blue", "green"]  # one switch, no flap
    assert app["status"]["activeRevision"] == revision_of(template("v2"))
    # The Event follows the write: a kill between the two loses the Event, never the switch.
    assert len(driver.events(namespace, APP, "Switched")) <= 1


# ---------------------------------------------------------------- a switch the API server refuses


def test_a_refused_switch_is_reported_and_status_never_claims_it(
    driver: Driver, namespace: str, operator: OperatorProcess, kube_cluster: KubeCluster
) -> None:
    v1_live_and_v2_waiting(driver, namespace)

    with (
        kube_cluster.api_client() as api,
        refusing_selector(api, namespace, "hello", "green") as refusal,
    ):
        driver.patch_spec(namespace, APP, {"promote": True})
        app = driver.wait_app(namespace, APP, phase="Degraded")

        assert refusal in app["status"]["message"]
        assert driver.selector_color(namespace, "hello") == "blue"
        assert app["status"]["activeColor"] == "blue"  # the truth, not the plan
        assert app["status"]["activeRevision"] == revision_of(template("v1"))
        assert app["status"]["previewColor"] == "green"
        assert not driver.events(namespace, APP, "Switched")

    # The cluster relents: the next pass switches.
    app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="green", timeout=60)
    assert driver.selector_color(namespace, "hello") == "green"


# ---------------------------------------------------------------- readiness gates the switch


def set_pod_ready(driver: Driver, namespace: str, pod: str, ready: bool) -> None:
    """What a kubelet does when a readiness probe fails or passes again."""
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    driver.resource("Pod").status.patch(
        name=pod,
        namespace=namespace,
        body={"status": {"conditions": [condition]}},
        content_type="application/strategic-merge-patch+json",
    )


def test_switch_waits_until_every_new_pod_is_ready(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    v1_live_and_v2_waiting(driver, namespace)
    green = driver.pods(namespace, "bluegreen.dev/app=hello,bluegreen.dev/color=green")
    assert len(green) == 2
    lagging = green[0]["metadata"]["name"]

    set_pod_ready(driver, namespace, lagging, ready=False)
    wait_for(
        lambda: lagging not in driver.ready_endpoint_pods(namespace, "hello-preview"),
        timeout=30,
        what="the preview's endpoints to drop the unready pod",
    )
    driver.patch_spec(namespace, APP, {"promote": True})
    app = driver.wait_app(namespace, APP, phase="Progressing", timeout=30)
    pause(3)

    assert driver.selector_color(namespace, "hello") == "blue"  # no switch onto 1 of 2 pods
    assert driver.app(namespace, APP)["status"]["activeColor"] == "blue"
    assert "green" in app["status"]["message"]

    set_pod_ready(driver, namespace, lagging, ready=True)
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="green", timeout=30)
    assert driver.selector_color(namespace, "hello") == "green"


# ---------------------------------------------------------------- hand edits


def test_hand_edits_of_replicas_and_selectors_are_put_back(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello(replicas=2))
    driver.wait_app(namespace, APP, phase="Healthy")

    driver.merge_patch("Deployment", namespace, "hello-blue", {"spec": {"replicas": 5}})
    driver.merge_patch("Service", namespace, "hello", {"spec": {"selector": {"app": "other"}}})

    # Deployments are watched: at once. Services: at the next pass (the tests' resync is 20 s).
    driver.wait_replicas(namespace, "hello-blue", 2, timeout=15)
    wait_for(
        lambda: (
            driver.get("Service", namespace, "hello")["spec"]["selector"]  # type: ignore[index]
            == {"bluegreen.dev/app": APP, "bluegreen.dev/color": "blue"}
        ),
        timeout=40,
        what="the prod selector to be put back",
    )


def test_a_deleted_live_deployment_comes_back_with_the_live_version(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    v1_live_and_v2_waiting(driver, namespace)

    driver.delete("Deployment", namespace, "hello-blue")

    def rebuilt() -> Obj | None:
        blue = driver.deployment(namespace, "hello-blue")
        return blue if blue and (blue.get("status") or {}).get("availableReplicas") == 2 else None

    blue = wait_for(rebuilt, timeout=60, what="hello-blue to be rebuilt and available")
    assert blue["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v1")
    app = driver.wait_app(namespace, APP, phase="Paused", activeColor="blue")
    assert app["status"]["activeRevision"] == revision_of(template("v1"))
    assert driver.selector_color(namespace, "hello") == "blue"


# ---------------------------------------------------------------- the prod Service lost or edited

# How long a hand-made change of a Service may take to heal: at once when Services are
# watched, at the latest at the next resync (the tests' operator resyncs every 20 s).
SERVICE_HEAL_TIMEOUT = 40


def v2_live_on_green_and_v3_waiting(driver: Driver, ns: str) -> None:
    """v2 live on green (blue, the first color, held v1), v3 ready on blue behind preview."""
    v1_live_and_v2_waiting(driver, ns)
    driver.patch_spec(ns, APP, {"promote": True})
    driver.wait_app(ns, APP, phase="Healthy", activeColor="green")
    driver.patch_spec(ns, APP, {"template": template("v3"), "promote": False})
    driver.wait_app(ns, APP, phase="Paused", activeColor="green", previewColor="blue")


def test_a_deleted_prod_service_comes_back_on_the_live_version_not_the_preview(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    v2_live_on_green_and_v3_waiting(driver, namespace)
    live_pods = pod_uids(driver, namespace, "green")

    driver.delete("Service", namespace, APP)

    recreated = wait_for(
        lambda: driver.get("Service", namespace, APP),
        timeout=SERVICE_HEAL_TIMEOUT,
        what="the prod Service to be recreated",
    )
    assert recreated["spec"]["selector"]["bluegreen.dev/color"] == "green"  # v2, not v3
    app = driver.wait_app(namespace, APP, phase="Paused", activeColor="green")
    assert app["status"]["activeRevision"] == revision_of(template("v2"))
    assert app["spec"]["promote"] is False
    pause(2)
    assert driver.selector_color(namespace, APP) == "green"
    assert pod_uids(driver, namespace, "green") == live_pods  # the live color was not touched
    assert driver.deployment(namespace, "hello-green")["spec"]["replicas"] == 2  # type: ignore[index]


def test_a_deleted_prod_service_after_a_switch_stays_on_the_new_version(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    v1_live_and_v2_waiting(driver, namespace)
    driver.patch_spec(namespace, APP, {"promote": True})
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
    driver.wait_replicas(namespace, "hello-blue", 0)  # the delay (3 s) passed: v1 scaled down

    driver.delete("Service", namespace, APP)

    recreated = wait_for(
        lambda: driver.get("Service", namespace, APP),
        timeout=SERVICE_HEAL_TIMEOUT,
        what="the prod Service to be recreated",
    )
    assert recreated["spec"]["selector"]["bluegreen.dev/color"] == "green"
    pause(2)
    assert driver.deployment(namespace, "hello-blue")["spec"]["replicas"] == 0  # type: ignore[index]
    assert driver.deployment(namespace, "hello-green")["spec"]["replicas"] == 2  # type: ignore[index]


def test_a_prod_selector_moved_by_hand_is_put_back_on_the_promoted_color(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    v2_live_on_green_and_v3_waiting(driver, namespace)

    driver.merge_patch(
        "Service", namespace, APP, {"spec": {"selector": {"bluegreen.dev/color": "blue"}}}
    )

    wait_for(
        lambda: driver.selector_color(namespace, APP) == "green",
        timeout=SERVICE_HEAL_TIMEOUT,
        what="the prod selector to be put back on green",
    )
    app = driver.wait_app(namespace, APP, phase="Paused", activeColor="green", previewColor="blue")
    assert app["status"]["activeRevision"] == revision_of(template("v2"))
    assert driver.deployment(namespace, "hello-green")["spec"]["replicas"] == 2  # type: ignore[index]


def test_a_foreign_prod_service_blocks_the_switch_and_status_says_what_is_live(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": APP},
            "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]},
        },
    )
    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Degraded", activeColor="blue")
    driver.wait_replicas(namespace, "hello-blue", 2)

    driver.patch_spec(namespace, APP, {"template": template("v2"), "promote": True})

    driver.wait_replicas(namespace, "hello-green", 2)
    wait_for(
        lambda: driver.selector_color(namespace, "hello-preview") == "green",
        timeout=30,
        what="the preview to select v2 on green",
    )
    pause(3)  # time in which a switch would have been claimed
    app = driver.wait_app(namespace, APP, phase="Degraded")
    assert app["status"]["activeColor"] == "blue"  # nothing switched: v1 is what is live
    assert app["status"]["activeRevision"] == revision_of(template("v1"))
    assert app["status"]["previewColor"] == "green"
    assert "Service hello" in app["status"]["message"]
    assert not driver.events(namespace, APP, "Switched")


# ---------------------------------------------------------------- scaling the app


def test_kubectl_scale_and_an_hpa_target_the_app_and_a_release_keeps_the_count(
    driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello(replicas=2))
    driver.wait_app(namespace, APP, phase="Healthy", replicas=2)

    subprocess.run(
        ["kubectl", "scale", "bga", APP, "--replicas=4", "-n", namespace],
        check=True,
        capture_output=True,
    )
    driver.wait_replicas(namespace, "hello-blue", 4)
    app = driver.wait_app(namespace, APP, phase="Healthy", replicas=4)
    assert app["status"]["selector"] == f"bluegreen.dev/app={APP},bluegreen.dev/color=blue"

    driver.create(
        namespace,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": APP},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "bluegreen.dev/v1alpha1",
                    "kind": "BlueGreenApp",
                    "name": APP,
                },
                "minReplicas": 4,
                "maxReplicas": 6,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    )
    # The HPA controller reads the app through its scale subresource.
    wait_for(
        lambda: (
            (driver.get("HorizontalPodAutoscaler", namespace, APP) or {})
            .get("status", {})
            .get("currentReplicas")
            == 4
        ),
        timeout=60,
        what="the HPA to read the app's 4 replicas",
    )

    driver.patch_spec(namespace, APP, {"template": template("v2"), "promote": True})
    app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="green", replicas=4)
    assert app["status"]["selector"].endswith("bluegreen.dev/color=green")
    assert driver.deployment(namespace, "hello-green")["spec"]["replicas"] == 4  # type: ignore[index]
