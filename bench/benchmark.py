"""Benchmarks of the operator on the local control plane; prints numbers, asserts nothing.

    make bench-ours                 # or: .venv/bin/python bench/benchmark.py --apps 200

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
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes

from harness import (
    Timeline,
    api_request_counts,
    delete_namespace,
    difference,
    ensure_cluster,
    fresh_namespace,
    rss_mib,
    wait_round,
)

from driver import Driver
from kubehelpers import wait_for
from operator_process import OperatorProcess
from specs import hello, template

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}
OUR_RESOURCES = {"deployments", "services", "ingresses", "bluegreenapps"}


def switch_latency(driver: Driver, rounds: int, log_dir: Path) -> list[float]:
    ns = fresh_namespace("bench-switch")
    op = OperatorProcess(ns, log_dir / "switch.log")
    op.start()
    try:
        driver.create_app(ns, "hello", hello(replicas=3, promote=True, scaleDownDelaySeconds=0))
        driver.wait_app(ns, "hello", phase="Healthy")
        timeline = Timeline(driver, ns, active="hello", preview="hello-preview")
        timeline.start()
        timeline.wait_synced()
        latencies = []
        for i in range(rounds):
            color_before = driver.app(ns, "hello")["status"]["activeColor"]
            target = "green" if color_before == "blue" else "blue"
            round_start = time.monotonic()
            driver.patch_spec(ns, "hello", {"template": template(f"v{i + 2}")})
            driver.wait_app(ns, "hello", phase="Healthy", activeColor=target, timeout=60)
            seen = wait_round(timeline, round_start, replicas=3, timeout=10)
            assert seen.preview_ready is not None, "switched before the preview listed the pods"
            latencies.append(seen.switched - seen.preview_ready)
        timeline.stop()
        return latencies
    finally:
        op.stop()


def api_writes() -> dict[str, int]:
    """Write requests the API server has served for our resources, from its metrics."""
    return api_request_counts(
        lambda labels: labels.get("verb") in WRITE_VERBS and labels.get("resource") in OUR_RESOURCES
    )


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
        idle_writes = difference(after, before)
        return {
            "apps": apps,
            "seconds_to_all_healthy": round(converged, 1),
            "rss_mib_start": round(rss_start, 1),
            "rss_mib_after": round(rss_busy, 1),
            "idle_seconds": idle_seconds,
            "resyncs_in_idle": int(idle_seconds // 5),
            "idle_writes": idle_writes,
        }
    finally:
        op.stop()
        delete_namespace(ns)


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
