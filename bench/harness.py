"""What the benchmarks share: the local control plane, namespaces, watches that time what
happens to an app's Services and pods, the API server's own request counts, and a
process's CPU time and memory from /proc."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from driver import Driver  # noqa: E402
from kubehelpers import wait_for  # noqa: E402

Obj = dict[str, Any]
PODS_PER_KWOK_NODE = 110  # the allocatable pods hack/cluster.sh gives each kwok node


def run(*command: str, stdin: str | None = None) -> str:
    """Its output; its error output in the exception when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, input=stdin)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def kubectl(*args: str, stdin: str | None = None) -> str:
    return run("kubectl", *args, stdin=stdin)


def ensure_cluster() -> Path:
    """Start the local control plane unless it is up; point this process (KUBECONFIG,
    PATH) at it and apply the BlueGreenApp CRD. Returns its kubeconfig."""
    run(str(REPO / "hack" / "cluster.sh"), "up")
    kubeconfig = REPO / ".cluster" / "kubeconfig"
    os.environ["KUBECONFIG"] = str(kubeconfig)
    bin_dir = (REPO / ".cluster" / "bin-dir").read_text().strip()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    wait_established("bluegreenapps.bluegreen.dev")
    return kubeconfig


def wait_established(crd: str) -> None:
    # `kubectl wait` fails at once while a new CRD has no conditions yet: retry it.
    wait_for(
        lambda: kubectl("wait", "--for", "condition=established", f"crd/{crd}", "--timeout=5s"),
        timeout=60,
        what=f"the CRD {crd} to be established",
    )


def ensure_pod_capacity(pods: int) -> None:
    """Enough kwok nodes for this many pods besides the ones already scheduled."""
    nodes = max(3, math.ceil(pods / PODS_PER_KWOK_NODE))
    run(str(REPO / "hack" / "cluster.sh"), "nodes", str(nodes))


def fresh_namespace(name: str) -> str:
    delete_namespace(name)
    kubectl("create", "namespace", name)
    return name


def delete_namespace(name: str, timeout: float = 900) -> None:
    """Delete it and wait until it is gone: the garbage collection of its objects would
    otherwise load the control plane during the next measurement."""
    subprocess.run(
        ["kubectl", "delete", "namespace", name, "--wait=true", f"--timeout={timeout:.0f}s"],
        capture_output=True,
    )


# --- a process, from /proc --------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count the fields after its ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


# --- the API server's metrics -----------------------------------------------------------

METRIC_LINE = re.compile(r"^(?P<name>\w+)\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+-]+)$")


def metric_samples(name: str) -> Iterable[tuple[dict[str, str], float]]:
    """Each sample of one counter on the API server's /metrics: its labels and value."""
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        m = METRIC_LINE.match(line)
        if m and m["name"] == name:
            yield dict(re.findall(r'(\w+)="([^"]*)"', m["labels"])), float(m["value"])


def api_request_counts(keep: Callable[[dict[str, str]], bool]) -> dict[str, int]:
    """Requests the API server has served (all clients), by "VERB resource/subresource",
    for the samples of ``apiserver_request_total`` that ``keep`` accepts."""
    counts: dict[str, int] = {}
    for labels, value in metric_samples("apiserver_request_total"):
        if keep(labels):
            key = f"{labels['verb']} {labels['resource']}/{labels.get('subresource', '')}"
            counts[key] = counts.get(key, 0) + int(value)
    return counts


def difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What each counter gained between two snapshots (only those that moved)."""
    moved = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in moved.items() if v}


# --- statistics -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list: always one of the values."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


# --- the EndpointSlice controller's retries ----------------------------------------------

# kube-controller-manager logs this (at its default verbosity) each time it puts a Service
# back in its queue: most often "EndpointSlice informer cache is out of date", when it is
# asked to sync a Service again before its informer has seen the slices it just wrote. The
# retry comes after its first backoff, 1 s: the one-second promotions (docs/benchmarks.md).
SLICE_RETRY = re.compile(
    r"^[IEW](\d{4}) (\d\d:\d\d:\d\d\.\d+)\s+\d+ endpointslice_controller\.go:\d+\] "
    r'"Error syncing endpoint slices for service, retrying" key="([^"]+)"'
)


def controller_manager_log() -> Path:
    """Where hack/cluster.sh has kube-controller-manager write its log."""
    return REPO / ".cluster" / "logs" / "kube-controller-manager.log"


def slice_retries(lines: Iterable[str], key: str, year: int) -> list[float]:
    """Wall-clock times (epoch seconds) at which the EndpointSlice controller requeued the
    Service ``key`` ("namespace/name"). klog stamps local time without the year."""
    times = []
    for line in lines:
        found = SLICE_RETRY.match(line)
        if found and found.group(3) == key:
            month_day, clock = found.group(1), found.group(2)
            stamp = time.strptime(f"{year}{month_day} {clock.split('.')[0]}", "%Y%m%d %H:%M:%S")
            times.append(time.mktime(stamp) + float("0." + clock.split(".")[1]))
    return times


# --- watches ----------------------------------------------------------------------------


class Timeline:
    """Receive times of watch events in one namespace: the selector of the active (prod)
    Service, the pods the preview Service's EndpointSlices list ready, and when each pod
    was first seen, and first seen Ready.

    The watches are long and resumed from their last resourceVersion: a re-list would
    stamp old states with new receive times. Everything is kept as state (the union of
    the slices, a pod's first Ready), so a re-list after an expired resourceVersion records
    nothing new.
    """

    def __init__(self, driver: Driver, namespace: str, active: str, preview: str) -> None:
        self.driver, self.namespace = driver, namespace
        self.active, self.preview = active, preview
        self.selector: list[tuple[float, dict[str, str]]] = []
        self.preview_ready: list[tuple[float, frozenset[str]]] = []
        self.pod_seen: dict[str, float] = {}
        self.pod_ready: dict[str, float] = {}
        self.pod_labels: dict[str, dict[str, str]] = {}
        self._slices: dict[str, frozenset[str]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        watches: list[tuple[str, Callable[[float, str, Obj], None], dict[str, str]]] = [
            ("Service", self.record_service, {"field_selector": f"metadata.name={self.active}"}),
            (
                "EndpointSlice",
                self.record_slice,
                {"label_selector": f"kubernetes.io/service-name={self.preview}"},
            ),
            ("Pod", self.record_pod, {}),
        ]
        for kind, on_event, selectors in watches:
            thread = threading.Thread(
                target=self._watch, args=(kind, on_event), kwargs=selectors, daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def wait_synced(self, timeout: float = 30) -> None:
        """Until the active Service's first state has arrived."""
        wait_for(lambda: self.selector, timeout=timeout, what=f"a watch event of {self.active}")

    def _watch(self, kind: str, on_event: Callable[[float, str, Obj], None], **sel: str) -> None:
        resource = self.driver.resource(kind)
        version = None
        while not self._stop.is_set():
            try:
                for event in resource.watch(
                    namespace=self.namespace, resource_version=version, timeout=5, **sel
                ):
                    received = time.monotonic()
                    obj = event["raw_object"]
                    version = obj["metadata"]["resourceVersion"]
                    on_event(received, event["type"], obj)
            except kubernetes.client.ApiException as exc:
                if exc.status != 410:
                    raise
                version = None  # expired: re-list (the state absorbs the repeats)

    def record_service(self, received: float, _type: str, svc: Obj) -> None:
        selector = dict((svc.get("spec") or {}).get("selector") or {})
        if not self.selector or self.selector[-1][1] != selector:
            self.selector.append((received, selector))

    def record_slice(self, received: float, type_: str, eps: Obj) -> None:
        name = eps["metadata"]["name"]
        if type_ == "DELETED":
            self._slices.pop(name, None)
        else:
            self._slices[name] = frozenset(
                ep["targetRef"]["name"]
                for ep in eps.get("endpoints") or []
                if (ep.get("conditions") or {}).get("ready", True) is not False
                and ep.get("targetRef")
            )
        ready = frozenset().union(*self._slices.values())
        if not self.preview_ready or self.preview_ready[-1][1] != ready:
            self.preview_ready.append((received, ready))

    def record_pod(self, received: float, _type: str, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        self.pod_seen.setdefault(name, received)
        self.pod_labels[name] = dict(pod["metadata"].get("labels") or {})
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            self.pod_ready.setdefault(name, received)


@dataclass(frozen=True)
class Round:
    """One promotion as the watches saw it (monotonic seconds)."""

    changed: float  # the new template was sent
    switched: float  # the active Service first selected the new pods
    pods_ready: float | None  # the last of the new pods was seen Ready
    preview_ready: float | None  # the preview's EndpointSlices first listed them all ready
    slice_retries: int = 0  # the EndpointSlice controller requeued the preview meanwhile

    @property
    def switched_before_preview_listed_all(self) -> bool:
        return self.preview_ready is None or self.preview_ready > self.switched


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def analyse_round(
    timeline: Timeline, changed: float, replicas: int, retries: Iterable[float] = ()
) -> Round | None:
    """The promotion that began at ``changed``: None until the active Service's selector
    has moved. The new pods are the ones first seen after the change that the new
    selector selects. ``retries``: when (monotonic) the EndpointSlice controller requeued
    the preview Service."""
    previous = next((sel for t, sel in reversed(timeline.selector) if t < changed), None)
    switch = next(((t, s) for t, s in timeline.selector if t >= changed and s != previous), None)
    if switch is None:
        return None
    switched, selector = switch
    new_pods = {
        pod
        for pod, seen in timeline.pod_seen.items()
        if seen >= changed and selects(selector, timeline.pod_labels.get(pod, {}))
    }
    ready_times = sorted(timeline.pod_ready[p] for p in new_pods if p in timeline.pod_ready)
    listed_all = (t for t, ready in timeline.preview_ready if len(ready & new_pods) >= replicas)
    preview_ready = next((t for t in listed_all if t >= changed), None)
    return Round(
        changed=changed,
        switched=switched,
        pods_ready=ready_times[replicas - 1] if len(ready_times) >= replicas else None,
        preview_ready=preview_ready,
        slice_retries=sum(1 for t in retries if changed <= t <= switched),
    )


def wait_round(timeline: Timeline, changed: float, replicas: int, timeout: float = 60) -> Round:
    """The promotion that began at ``changed``, once the watches have seen the switch."""
    found = wait_for(
        lambda: analyse_round(timeline, changed, replicas),
        timeout=timeout,
        what="the active Service to select the new pods",
    )
    assert found is not None  # wait_for returns only a truthy value
    return found
