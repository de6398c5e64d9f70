"""The operator at scale on the local control plane; prints numbers, asserts nothing.

    .venv/bin/python bench/scale.py --apps 1000      # (make bench-scale ARGS="--apps 1000")
    make bench-scale                                 # 200, 1,000 and 5,000 apps: ~55 min
    .venv/bin/python bench/scale.py --apps 200,1000,5000 --markdown table.md

Several sizes run one after another (each in a fresh namespace, the last one's deleted
first) and end in one table, with the per-app costs that show how each grows.

1. N apps created at once: time until all are Healthy, the operator's CPU and memory;
   then 30 s with nothing to do: the CPU a converged operator spends anyway.
2. N apps given a new template at once, with ``promote: true``: time until every one has
   switched and until every old color is scaled down, the peak memory, the ERROR lines
   in the operator's log, the writes made.
3. A restart with N converged apps: the requests the operator makes in the 30 s after it
   starts (by verb and resource, from the API server's own metrics, less a baseline of
   the same length without the operator): ideally 0 writes and one LIST per watched kind.
4. A resync of every app: the requests of 30 s with a resync every 10 s.

In steps 1 and 2 the operator's own metrics count its reconcile passes; with ``--profile``
(and py-spy installed: ``pip install py-spy``) its threads are sampled too, and the shares
of CPU by thread and by function are printed and kept beside the operator's logs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from harness import (  # noqa: E402
    api_request_counts,
    cpu_seconds,
    delete_namespace,
    ensure_cluster,
    ensure_pod_capacity,
    fresh_namespace,
    rss_mib,
)
from sampling import Sampled, summary  # noqa: E402

from driver import Driver  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402
from specs import hello, template  # noqa: E402

OUR_RESOURCES = {
    "bluegreenapps",
    "deployments",
    "services",
    "ingresses",
    "endpointslices",
    "replicasets",
    "events",
    "jobs",
}
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE"}


def requests_by_verb() -> Counter[str]:
    """Requests the API server has served for the operator's resources (by everyone), by
    "VERB resource/subresource"."""
    return Counter(api_request_counts(lambda labels: labels.get("resource") in OUR_RESOURCES))


def during(seconds: float) -> Counter[str]:
    before = requests_by_verb()
    time.sleep(seconds)
    after = requests_by_verb()
    after.subtract(before)
    return Counter({k: v for k, v in after.items() if v > 0})


def less(measured: Counter[str], baseline: Counter[str]) -> dict[str, int]:
    out = Counter(measured)
    out.subtract(baseline)
    return {k: v for k, v in sorted(out.items()) if v > 0}


# What only the operator writes (the controllers write ReplicaSets, EndpointSlices and the
# Deployments' status; Events are posted by both and counted apart).
OPERATOR_WRITTEN = {"deployments/", "services/", "ingresses/", "bluegreenapps/status"}


def writes_of(counts: dict[str, int], resources: set[str] = OPERATOR_WRITTEN) -> int:
    return sum(
        n for k, n in counts.items() if k.split()[0] in WRITE_VERBS and k.split()[1] in resources
    )


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except OSError:
                return

    def stop(self) -> float:
        self._stop.set()
        return self.peak


def wait_all(driver: Driver, ns: str, apps: int, done: Any, timeout: float) -> float:
    started = time.monotonic()
    # Listing every app is itself load on the control plane: once a second per 1,000 apps.
    poll = max(1.0, apps / 1000)
    while time.monotonic() - started < timeout:
        items = driver.list("BlueGreenApp", ns)
        if len(items) == apps and all(done(a.get("status") or {}) for a in items):
            return time.monotonic() - started
        time.sleep(poll)
    raise TimeoutError(f"not all {apps} apps done after {timeout} s")


def wait_scaled_down(driver: Driver, ns: str, apps: int, timeout: float) -> float:
    """Until every app's blue (the color released from) is scaled to 0."""
    started = time.monotonic()
    poll = max(1.0, apps / 1000)
    while time.monotonic() - started < timeout:
        blues = [
            d for d in driver.list("Deployment", ns) if d["metadata"]["name"].endswith("-blue")
        ]
        if len(blues) == apps and all(d["spec"]["replicas"] == 0 for d in blues):
            return time.monotonic() - started
        time.sleep(poll)
    raise TimeoutError(f"not all {apps} blues scaled down after {timeout} s")


def error_lines(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if " ERROR " in line)


PASSES = "bluegreen_reconcile_duration_seconds_count"


def passes(op: OperatorProcess) -> float:
    """Reconcile passes the operator has made so far (its own metrics)."""
    return op.scrape().get(PASSES, 0.0)


def sampled(pid: int, log_dir: Path, phase: str, profile: bool) -> Sampled:
    return Sampled(pid, log_dir / f"{phase}.spy.txt") if profile else Sampled(pid, None)


def run(driver: Driver, apps: int, log_dir: Path, profile: bool = False) -> dict[str, Any]:
    ensure_pod_capacity(2 * apps + 100)  # every app's pods and its preview's at once
    ns = fresh_namespace("bench-scale")
    names = [f"app{i:04d}" for i in range(apps)]
    result: dict[str, Any] = {"apps": apps}

    baseline = during(30)
    result["baseline_30s"] = dict(baseline)

    log = log_dir / "operator.log"
    op = OperatorProcess(ns, log, env={"BLUEGREEN_RESYNC_SECONDS": "300"}, endpoints=True)
    op.start()
    assert op.proc is not None
    pid = op.proc.pid
    result["rss_start_mib"] = round(rss_mib(pid), 1)  # watching, no app yet
    rss = PeakRss(pid)
    cpu0, passes0 = cpu_seconds(pid), passes(op)
    started = time.monotonic()
    with sampled(pid, log_dir, "create", profile) as samples:
        for name in names:
            driver.create_app(ns, name, hello(replicas=1, promote=True, scaleDownDelaySeconds=5))
        result["create_requests_s"] = round(time.monotonic() - started, 1)
        result["created_to_healthy_s"] = round(
            wait_all(driver, ns, apps, lambda s: s.get("phase") == "Healthy", 1800)
            + result["create_requests_s"],
            1,
        )
    result["create_cpu_s"] = round(cpu_seconds(pid) - cpu0, 1)
    result["create_passes"] = passes(op) - passes0
    result["create_profile"] = summary(samples.path)
    result["rss_converged_mib"] = round(rss_mib(pid), 1)
    # What a converged operator spends with nothing to do (its watches, its timers): a
    # phase that takes longer at a larger size pays it for longer.
    cpu0 = cpu_seconds(pid)
    time.sleep(30)
    result["idle_cpu_30s"] = round(cpu_seconds(pid) - cpu0, 2)

    cpu0, passes0 = cpu_seconds(pid), passes(op)
    before = requests_by_verb()
    started = time.monotonic()
    with sampled(pid, log_dir, "release", profile) as samples:
        for name in names:
            driver.patch_spec(ns, name, {"template": template("v2")})
        result["release_requests_s"] = round(time.monotonic() - started, 1)
        switched = wait_all(
            driver,
            ns,
            apps,
            lambda s: s.get("phase") == "Healthy" and s.get("activeColor") == "green",
            1800,
        )
        result["release_to_all_switched_s"] = round(switched + result["release_requests_s"], 1)
        # The old colors are scaled down 5 s after each switch; at thousands of apps that
        # drains for minutes after the last switch, and the restart below must find none due.
        result["release_to_all_scaled_down_s"] = round(
            wait_scaled_down(driver, ns, apps, 1800) + switched + result["release_requests_s"],
            1,
        )
    release = requests_by_verb()
    release.subtract(before)
    result["release_operator_writes"] = writes_of(dict(release))
    result["release_events"] = writes_of(dict(release), {"events/"})
    result["release_cpu_s"] = round(cpu_seconds(pid) - cpu0, 1)
    result["release_passes"] = passes(op) - passes0
    result["release_profile"] = summary(samples.path)
    result["rss_peak_mib"] = round(rss.stop(), 1)
    result["error_lines"] = error_lines(log)

    op.stop()
    time.sleep(2)
    restart_log = log_dir / "restart.log"
    op = OperatorProcess(ns, restart_log, env={"BLUEGREEN_RESYNC_SECONDS": "300"})
    before = requests_by_verb()
    op.start()
    time.sleep(30)
    after = requests_by_verb()
    after.subtract(before)
    result["restart_30s"] = less(after, baseline)
    result["restart_operator_writes"] = writes_of(result["restart_30s"])
    assert op.proc is not None
    result["rss_after_restart_mib"] = round(rss_mib(op.proc.pid), 1)
    op.stop()

    op = OperatorProcess(ns, log_dir / "resync.log", env={"BLUEGREEN_RESYNC_SECONDS": "10"})
    op.start()
    time.sleep(15)  # past the start
    result["resync_every_10s_30s"] = less(during(30), baseline)
    result["resync_operator_writes"] = writes_of(result["resync_every_10s_30s"])
    op.stop()
    delete_namespace(ns)
    return result


ROWS: list[tuple[str, str, bool]] = [
    # (label, key, also per app)
    ("apps created → all `Healthy` (s)", "created_to_healthy_s", False),
    ("operator CPU to converge (s)", "create_cpu_s", True),
    ("reconcile passes to converge", "create_passes", True),
    ("RSS converged (MiB)", "rss_converged_mib", True),
    ("operator CPU in 30 s converged, nothing to do (s)", "idle_cpu_30s", False),
    ("new template for all at once → every one switched (s)", "release_to_all_switched_s", False),
    ("… → every old color scaled down (s)", "release_to_all_scaled_down_s", False),
    ("operator CPU for the release (s)", "release_cpu_s", True),
    ("reconcile passes during the release", "release_passes", True),
    ("RSS peak during the release (MiB)", "rss_peak_mib", True),
    ("the operator's writes during the release", "release_operator_writes", True),
    ("Events posted during the release", "release_events", True),
    ("ERROR lines in the operator's log", "error_lines", False),
    ("RSS 30 s after a restart (MiB)", "rss_after_restart_mib", True),
    ("writes in the 30 s after a restart", "restart_operator_writes", False),
    ("GET/LIST in the 30 s after a restart", "restart_reads", False),
    ("writes in 30 s of a resync every 10 s", "resync_operator_writes", False),
]


def reads_of(counts: dict[str, int]) -> int:
    return sum(n for k, n in counts.items() if k.split()[0] in {"GET", "LIST"})


def table(results: list[dict[str, Any]]) -> str:
    """One row per cost, a column per size; per app under it where it is a per-app cost."""
    for r in results:
        r["restart_reads"] = reads_of(r["restart_30s"])
    head = "| measure | " + " | ".join(f"{r['apps']:,} apps" for r in results) + " |"
    lines = [head, "|---|" + "---:|" * len(results)]
    for label, key, per_app in ROWS:
        cells = [_number(r[key]) if key in r else "—" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if per_app and key.startswith("rss"):
            # Memory per app: above the operator's own with no app yet, in KiB.
            cells = [
                _number((r[key] - r["rss_start_mib"]) * 1024 / r["apps"], per_app=True)
                for r in results
            ]
            lines.append(
                "| … per app, above the operator with no app (KiB) | " + " | ".join(cells) + " |"
            )
        elif per_app:
            cells = [_number(r[key] / r["apps"], per_app=True) for r in results]
            lines.append("| … per app | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(value: float, per_app: bool = False) -> str:
    if per_app:
        return f"{value:.3g}"
    return f"{value:,.0f}" if value >= 100 else f"{value:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--apps", default="1000", help="apps, or several sizes run in turn: 200,1000,5000"
    )
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument(
        "--profile", action="store_true", help="sample the operator with py-spy (on PATH)"
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.apps.split(",")]
    ensure_cluster()
    log_dir = Path(tempfile.mkdtemp(prefix="bluegreen-scale-"))
    results = []
    with kubernetes.config.new_client_from_config(os.environ["KUBECONFIG"]) as api:
        for apps in sizes:
            size_dir = log_dir / str(apps)
            size_dir.mkdir()
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            results.append({"started": started, **run(Driver(api), apps, size_dir, args.profile)})
            print(json.dumps(results[-1], indent=2), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
    markdown = table(results)
    print(markdown)
    if args.markdown:
        args.markdown.write_text(markdown)
    print(f"operator logs: {log_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
