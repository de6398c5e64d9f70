"""Blue/green switches under real traffic on the real node: the scenarios the tests assert
on and the traffic benchmark repeats.

Every time here is in seconds on the load generator's axis (``Result.sent``), so requests
and the cluster's moves line up in one table or chart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from driver import Driver, Obj
from kubehelpers import wait_for
from loadgen import LoadGenerator, Run
from realnode import answer, node_port, template, web

COLOR = "bluegreen.dev/color"
POLL = 0.1


@dataclass
class Timeline:
    """When the cluster moved, seen by polling the API (within ~0.1 s)."""

    patched: float | None = None  # the new version (or the rollback) was applied
    preview_ready: float | None = None  # preview EndpointSlices list every new pod ready
    switched: float | None = None  # the prod Service selects the new color
    slices_moved: float | None = None  # its EndpointSlices list no pod of the old color
    scaled_down: float | None = None  # the old color's Deployment is at 0 replicas
    old_pods_gone: float | None = None  # no pod of the old color exists any more


@dataclass
class Outcome:
    run: Run
    timeline: Timeline
    old_color: str
    new_color: str


def describe(run: Run) -> str:
    """A run in one line: requests, failures (the first ten, with their wall time), versions."""
    failures = run.failures
    sample = ", ".join(
        f"{r.sent:.2f}s (wall {run.started_wall + r.sent:.3f}) {r.status} {r.error}"
        for r in failures[:10]
    )
    return (
        f"{len(run.results)} requests, {len(failures)} failed "
        f"(first: {sample or '-'}), versions {dict(run.versions())}"
    )


def deploy_v1(driver: Driver, namespace: str, name: str, **extra: object) -> int:
    """Create the app at v1 on the real node; wait until 127.0.0.1:<nodePort> answers v1.
    Returns the node port."""
    driver.create_app(namespace, name, web("v1", **extra))
    driver.wait_app(namespace, name, timeout=120, phase="Healthy")
    svc = wait_for(
        lambda: driver.get("Service", namespace, name), timeout=10, what=f"Service {name}"
    )
    port = node_port(svc)
    wait_for(lambda: answer(port) == "v1", timeout=30, what=f"v1 answering on 127.0.0.1:{port}")
    return port


def _color_pods(driver: Driver, namespace: str, name: str, color: str) -> list[Obj]:
    """Every pod of one color, terminating ones included."""
    return driver.list("Pod", namespace, f"bluegreen.dev/app={name},{COLOR}={color}")


def _endpoint_pods(driver: Driver, namespace: str, service: str) -> set[str]:
    """Pods a Service's EndpointSlices list, ready or not."""
    slices = driver.list("EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
    return {
        ep["targetRef"]["name"]
        for s in slices
        for ep in s.get("endpoints") or []
        if ep.get("targetRef")
    }


def _active_color(driver: Driver, namespace: str, name: str) -> str:
    color = driver.selector_color(namespace, name)
    assert color is not None, f"Service {name} selects no color"
    return color


def _release_v2(
    driver: Driver,
    namespace: str,
    name: str,
    load: LoadGenerator,
    colors: tuple[str, str],
    replicas: int,
    delay: int,
) -> Timeline:
    """After a baseline of v1 under load, v2 promoted; its timeline until the old pods are gone."""
    time.sleep(2)  # a baseline of v1 before anything moves
    driver.patch_spec(
        namespace,
        name,
        {"template": template("v2"), "promote": True, "scaleDownDelaySeconds": delay},
    )
    old, new = colors
    return _watch(
        driver,
        namespace,
        name,
        load,
        old,
        new,
        replicas,
        done=lambda t: t.old_pods_gone is not None,
        deadline=delay + 80,
    )


def _watch(
    driver: Driver,
    namespace: str,
    name: str,
    load: LoadGenerator,
    old: str,
    new: str,
    replicas: int,
    done: Callable[[Timeline], bool],
    deadline: float,
) -> Timeline:
    """Poll the cluster, filling a timeline, until ``done(timeline)`` or ``deadline``
    (seconds on the load axis)."""
    tl = Timeline(patched=load.elapsed())
    while load.elapsed() < deadline and not done(tl):
        now = load.elapsed()
        if tl.preview_ready is None:
            ready = driver.ready_endpoint_pods(namespace, f"{name}-preview")
            new_pods = {p["metadata"]["name"] for p in _color_pods(driver, namespace, name, new)}
            if len(ready & new_pods) >= replicas:
                tl.preview_ready = now
        if tl.switched is None and driver.selector_color(namespace, name) == new:
            tl.switched = now
        if tl.switched is not None and tl.slices_moved is None:
            old_pods = {p["metadata"]["name"] for p in _color_pods(driver, namespace, name, old)}
            if not _endpoint_pods(driver, namespace, name) & old_pods:
                tl.slices_moved = now
        if tl.switched is not None and tl.scaled_down is None:
            dep = driver.deployment(namespace, f"{name}-{old}")
            if dep is not None and dep["spec"]["replicas"] == 0:
                tl.scaled_down = now
        waiting_for_end = tl.scaled_down is not None and tl.old_pods_gone is None
        if waiting_for_end and not _color_pods(driver, namespace, name, old):
            tl.old_pods_gone = now
        time.sleep(POLL)
    return tl


def switch_under_load(
    driver: Driver,
    namespace: str,
    name: str,
    port: int,
    rate: float,
    delay: int,
    replicas: int = 3,
    tail: float = 3.0,
    keepalive: bool = False,
) -> Outcome:
    """v1 serving under load; v2 with promote: true; the load runs through the switch and
    the old color's scale-down, then ``tail`` seconds more. ``keepalive``: clients that
    keep their connections open (see ``LoadGenerator``)."""
    old = _active_color(driver, namespace, name)
    new = "green" if old == "blue" else "blue"
    load = LoadGenerator(
        "127.0.0.1", port, rate=rate, max_seconds=delay + 90, keepalive=keepalive
    ).start()
    try:
        tl = _release_v2(driver, namespace, name, load, (old, new), replicas, delay)
        time.sleep(tail)
    finally:
        run = load.stop()
    return Outcome(run, tl, old, new)


def rollback_under_load(
    driver: Driver,
    namespace: str,
    name: str,
    port: int,
    rate: float,
    delay: int = 60,
    host_header: str | None = None,
) -> tuple[Outcome, float | None]:
    """v2 promoted under load, then the template reverted to v1 while v1's pods still run.
    Returns the outcome of the switch to v2 and when prod selected v1's color again.
    ``host_header``: the load's Host (through a proxy on ``port`` that routes by it)."""
    old = _active_color(driver, namespace, name)
    new = "green" if old == "blue" else "blue"
    load = LoadGenerator(
        "127.0.0.1", port, rate=rate, max_seconds=60, host_header=host_header
    ).start()
    back: float | None = None
    try:
        time.sleep(2)
        driver.patch_spec(
            namespace,
            name,
            {"template": template("v2"), "promote": True, "scaleDownDelaySeconds": delay},
        )
        tl = _watch(
            driver,
            namespace,
            name,
            load,
            old,
            new,
            3,
            done=lambda t: t.switched is not None,
            deadline=45,
        )
        time.sleep(3)  # v2 serves for a while
        driver.patch_spec(namespace, name, {"template": template("v1")})
        while load.elapsed() < 55 and back is None:
            if driver.selector_color(namespace, name) == old:
                back = load.elapsed()
            time.sleep(POLL)
        time.sleep(3)
    finally:
        run = load.stop()
    return Outcome(run, tl, old, new), back


def unready_version_under_load(
    driver: Driver, namespace: str, name: str, port: int, rate: float, seconds: float = 20
) -> Run:
    """A v2 whose readiness probe never passes, with promote: true, under load for
    ``seconds``."""
    with LoadGenerator("127.0.0.1", port, rate=rate, max_seconds=seconds + 5) as load:
        time.sleep(2)
        driver.patch_spec(
            namespace, name, {"template": template("v2", ready_fails=True), "promote": True}
        )
        time.sleep(seconds)
    return load.run


@dataclass
class Outcomes:
    """Several loads through one switch; ``timeline`` on the axis of ``runs[first]``, and
    ``offsets[label]``: what to add to a time on that axis to place it on ``runs[label]``'s."""

    runs: dict[str, Run]
    offsets: dict[str, float]
    timeline: Timeline
    old_color: str
    new_color: str

    def last_answer(self, label: str, version: str) -> float | None:
        """When (on the timeline's axis) the last request answered by ``version`` on one
        load was sent."""
        sent = [r.sent for r in self.runs[label].results if r.ok and r.version == version]
        return max(sent) - self.offsets[label] if sent else None


def switch_under_loads(
    driver: Driver,
    namespace: str,
    name: str,
    loads: dict[str, LoadGenerator],
    delay: int,
    replicas: int = 3,
    tail: float = 3.0,
) -> Outcomes:
    """Like :func:`switch_under_load`, with several load generators running at once (say
    the same clients through a proxy and through kube-proxy), so one switch is seen from
    every path."""
    old = _active_color(driver, namespace, name)
    new = "green" if old == "blue" else "blue"
    started = {label: load.start() for label, load in loads.items()}
    first = next(iter(started.values()))
    try:
        tl = _release_v2(driver, namespace, name, first, (old, new), replicas, delay)
        time.sleep(tail)
    finally:
        runs = {label: load.stop() for label, load in started.items()}
    base = first.run.started_wall
    offsets = {label: base - run.started_wall for label, run in runs.items()}
    return Outcomes(runs, offsets, tl, old, new)


def assert_rolled_back_instantly(
    driver: Driver, namespace: str, outcome: Outcome, back: float, old_pods: set[str]
) -> None:
    """The app "web" rolled back at ``back``: Healthy on the old color, whose pods were never
    replaced (the rollback created none for it), and not one request failed on the way."""
    run = outcome.run
    print(describe(run), outcome.timeline, f"back at {back}")
    assert outcome.timeline.switched is not None, outcome.timeline
    app = driver.wait_app(namespace, "web", timeout=30, phase="Healthy")
    assert app["status"]["activeColor"] == outcome.old_color
    old_still = {
        p["metadata"]["uid"]
        for p in driver.pods(
            namespace, f"bluegreen.dev/app=web,bluegreen.dev/color={outcome.old_color}"
        )
    }
    assert old_still == old_pods, (old_pods, old_still)
    assert not run.failures, describe(run)
