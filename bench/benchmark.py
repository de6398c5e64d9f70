"""Benchmarks of the operator on the local control plane; prints numbers, asserts nothing.

    make bench                      # or: .venv/bin/python bench/benchmark.py --apps 200

1. Switch latency: from the moment the preview Service's EndpointSlices list every pod of
   the new color ready, to the moment the prod Service selects that color (both seen on
   watches by this process), over several promotions.
2. Scale: N apps created at once: time until all are Healthy, the operator's memory.
3. Idle cost: with every app converged and a resync every few seconds, the writes the
   API server counts for our resources (its own metrics), which should be zero.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from driver import Driver  # noqa: E402
from kubehelpers import wait_for  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402
from specs import hello, template  # noqa: E402

Obj = dict[str, Any]
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}
OUR_RESOURCES = {"deployments", "services", "ingresses", "bluegreenapps"}


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def ensure_cluster() -> None:
    subprocess.run([str(REPO / "hack" / "cluster.sh"), "up"], check=True, capture_output=True)
    os.environ["KUBECONFIG"] = str(REPO / ".cluster" / "kubeconfig")
    bin_dir = (REPO / ".cluster" / "bin-dir").read_text().strip()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl("wait", "--for", "condition=established", "crd/bluegreenapps.bluegreen.dev")


def fresh_namespace(name: str) -> str:
    subprocess.run(["kubectl", "delete", "namespace", name, "--wait=true"], capture_output=True)
    kubectl("create", "namespace", name)
    return name


class Timeline:
    """Receive times of watch events, for one Service's selector and its EndpointSlices."""

    def __init__(self, driver: Driver, namespace: str) -> None:
        self.driver, self.namespace = driver, namespace
        self.selector: list[tuple[float, str]] = []
        self.preview_ready: list[tuple[float, set[str]]] = []
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._watch_services, daemon=True).start()
        threading.Thread(target=self._watch_slices, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self, kind: str, on_event: Any, **selectors: str) -> None:
        """One long watch, resumed from the last resourceVersion: a re-list would report
        old states with new receive times."""
        resource = self.driver.resource(kind)
        version = None
        while not self._stop.is_set():
            for event in resource.watch(
                namespace=self.namespace, resource_version=version, timeout=5, **selectors
            ):
                received = time.monotonic()
                version = event["raw_object"]["metadata"]["resourceVersion"]
                on_event(received, event["raw_object"])

    def _watch_services(self) -> None:
        def record(received: float, svc: Obj) -> None:
            self.selector.append((received, svc["spec"]["selector"]["bluegreen.dev/color"]))

        self._watch("Service", record, field_selector="metadata.name=hello")

    def _watch_slices(self) -> None:
        def record(received: float, _slice: Obj) -> None:
            ready = self.driver.ready_endpoint_pods(self.namespace, "hello-preview")
            self.preview_ready.append((received, ready))

        self._watch(
            "EndpointSlice", record, label_selector="kubernetes.io/service-name=hello-preview"
        )


def switch_latency(driver: Driver, rounds: int, log_dir: Path) -> list[float]:
    ns = fresh_namespace("bench-switch")
    op = OperatorProcess(ns, log_dir / "switch.log")
    op.start()
    try:
        driver.create_app(ns, "hello", hello(replicas=3, promote=True, scaleDownDelaySeconds=0))
        driver.wait_app(ns, "hello", phase="Healthy")
        timeline = Timeline(driver, ns)
        timeline.start()
        time.sleep(1)
        latencies = []
        for i in range(rounds):
            color_before = driver.app(ns, "hello")["status"]["activeColor"]
            target = "green" if color_before == "blue" else "blue"
            round_start = time.monotonic()
            driver.patch_spec(ns, "hello", {"template": template(f"v{i + 2}")})
            driver.wait_app(ns, "hello", phase="Healthy", activeColor=target, timeout=60)
            time.sleep(0.5)
            switched_at = next(t for t, c in timeline.selector if t >= round_start and c == target)
            prefix = f"hello-{target}-"
            ready_at = next(
                t
                for t, pods in timeline.preview_ready
                if t >= round_start and len([p for p in pods if p.startswith(prefix)]) >= 3
            )
            latencies.append(switched_at - ready_at)
        timeline.stop()
        return latencies
    finally:
        op.stop()


def api_writes() -> dict[str, int]:
    """Write requests the API server has served for our resources, from its metrics."""
    text = kubectl("get", "--raw", "/metrics")
    counts: dict[str, int] = {}
    pattern = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<n>[0-9.e+]+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in OUR_RESOURCES:
            key = f"{labels['verb']} {labels['resource']}/{labels.get('subresource', '')}"
            counts[key] = counts.get(key, 0) + int(float(m["n"]))
    return counts


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scale(driver: Driver, apps: int, idle_seconds: float, log_dir: Path) -> dict[str, Any]:
    ns = fresh_namespace("bench-scale")
    op = OperatorProcess(ns, log_dir / "scale.log", env={"BLUEGREEN_RESYNC_SECONDS": "5"})
    op.start()
    assert op.proc is not None
    try:
        rss_start = rss_mib(op.proc.pid)
        started = time.monotonic()
        for i in range(apps):
            driver.create_app(ns, f"app{i:04d}", hello(replicas=1))

        def all_healthy() -> bool:
            items = driver.list("BlueGreenApp", ns)
            return len(items) == apps and all(
                (a.get("status") or {}).get("phase") == "Healthy" for a in items
            )

        wait_for(all_healthy, timeout=600, interval=1, what=f"{apps} apps to be Healthy")
        converged = time.monotonic() - started
        rss_busy = rss_mib(op.proc.pid)
        time.sleep(6)  # let the last status writes settle
        before = api_writes()
        time.sleep(idle_seconds)
        after = api_writes()
        idle_writes = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        return {
            "apps": apps,
            "seconds_to_all_healthy": round(converged, 1),
            "rss_mib_start": round(rss_start, 1),
            "rss_mib_after": round(rss_busy, 1),
            "idle_seconds": idle_seconds,
            "resyncs_in_idle": int(idle_seconds // 5),
            "idle_writes": {k: v for k, v in idle_writes.items() if v},
        }
    finally:
        op.stop()
        subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20)
    args = parser.parse_args()
    ensure_cluster()
    log_dir = Path(tempfile.mkdtemp(prefix="bluegreen-bench-"))
    with kubernetes.config.new_client_from_config(os.environ["KUBECONFIG"]) as api:
        driver = Driver(api)
        lat = switch_latency(driver, args.rounds, log_dir)
        print(f"switch latency over {len(lat)} promotions (readiness seen -> prod selector seen):")
        print(
            f"  median {statistics.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms, "
            f"all: {', '.join(f'{x * 1000:.0f}' for x in lat)} ms"
        )
        result = scale(driver, args.apps, args.idle_seconds, log_dir)
        print(f"scale: {result['apps']} apps Healthy after {result['seconds_to_all_healthy']} s")
        print(
            f"  operator RSS: {result['rss_mib_start']} MiB at start, "
            f"{result['rss_mib_after']} MiB with {result['apps']} apps"
        )
        print(
            f"  writes to our resources in {result['idle_seconds']:.0f} s idle "
            f"({result['resyncs_in_idle']} full resyncs): {result['idle_writes'] or 0}"
        )
    print(f"operator logs: {log_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
