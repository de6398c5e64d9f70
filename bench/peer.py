"""bluegreen-operator and Argo Rollouts side by side on the local control plane; prints one
table (measure | bluegreen-operator | Argo Rollouts | ratio), asserts nothing.

    make bench                                   # or, a quick run:
    .venv/bin/python bench/peer.py --apps 50 --promotions 10 --markdown out.md --json out.json

Both controllers run the same scenarios, one controller at a time, in one run (scenario by
scenario, ours first), as the same ServiceAccount, so the API server counts their requests
apart from everyone else's (bench/controllers.py):

1. Switch latency: one app of 3 replicas, auto-promotion; its template changes
   ``--promotions`` times (each time after the old pods are gone). The benchmark's own
   watches time when the preview Service's EndpointSlices list every new pod ready, when
   the new pods are all Ready, and when the active (prod) Service selects them; the
   control plane's log, when kube-controller-manager requeued the preview Service.
2. Scale, for each ``--apps`` N: N apps of 1 replica created at once (one after another,
   as fast as one client can) in one namespace; the time until all report healthy, the
   controller's CPU time meanwhile and its memory (RSS) once converged; its writes in the
   ``--settle-seconds`` after all are healthy and in the ``--idle-seconds`` after that.
3. With the smallest N converged: its requests in the ``--restart-seconds`` after a
   restart, and, restarted with a ``--resync-seconds`` resync, its GET/LIST per resync
   (``--resync-periods`` of them, after ``--warmup-seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes

from controllers import (
    FLOW_SCHEMA_PREFIX,
    OTHER,
    REQUEST_KINDS,
    ArgoRollouts,
    BlueGreenOperator,
    Controller,
    controller_kubeconfig,
)
from harness import (
    REPO,
    Round,
    Timeline,
    analyse_round,
    controller_manager_log,
    cpu_seconds,
    delete_namespace,
    difference,
    ensure_cluster,
    ensure_pod_capacity,
    fresh_namespace,
    metric_samples,
    percentile,
    rss_mib,
    slice_retries,
    wait_round,
)

from driver import Driver
from kubehelpers import wait_for

Obj = dict[str, Any]
REPLICAS = 3  # of the app whose promotions are timed
WRITES = ("events", "create", "update", "patch", "delete")
BASELINE_SECONDS = 10


def log(message: str) -> None:
    """Progress on stderr, with the load average: other work on the machine shows there."""
    when = f"{datetime.now(UTC):%H:%M:%S}, load {load_average()}"
    print(f"[{when}] {message}", file=sys.stderr, flush=True)


# --- the controller's requests ----------------------------------------------------------


def request_counts() -> dict[str, int]:
    """The requests the controllers' identity has sent so far, by kind (REQUEST_KINDS)."""
    counts = {name: 0 for name, _, _ in REQUEST_KINDS} | {OTHER: 0}
    for labels, value in metric_samples("apiserver_flowcontrol_dispatched_requests_total"):
        schema = labels.get("flow_schema", "")
        if schema.startswith(FLOW_SCHEMA_PREFIX):
            counts[schema.removeprefix(FLOW_SCHEMA_PREFIX)] = int(value)
    return counts


class Window:
    """The controller's requests while the ``with`` block runs, by kind."""

    def __enter__(self) -> Window:
        self.before = request_counts()
        self.requests: dict[str, int] = {}
        return self

    def __exit__(self, *_: object) -> None:
        self.requests = difference(request_counts(), self.before)


def measured_for(seconds: float) -> dict[str, int]:
    with Window() as window:
        time.sleep(seconds)
    return window.requests


# --- scenarios --------------------------------------------------------------------------


def wait_settled(ctl: Controller, driver: Driver, timeline: Timeline, ns: str, name: str) -> None:
    """Healthy, and only the active Service's pods left (the old ones scaled down)."""

    def settled() -> bool:
        selector = timeline.selector[-1][1]
        pods = driver.pods(ns, f"app={name}")
        selected = all(
            selector.items() <= (p["metadata"].get("labels") or {}).items() for p in pods
        )
        return (
            len(pods) == REPLICAS
            and selected
            and ctl.healthy(driver.get(ctl.app_kind, ns, name) or {})
        )

    wait_for(settled, timeout=120, what=f"{name} to settle on the new pods")


def switch_latency(
    ctl: Controller, driver: Driver, promotions: int
) -> tuple[list[Round], dict[str, float] | None]:
    """The timed promotions, and where the controller says its switches spent their time."""
    ns = fresh_namespace(f"peer-{ctl.key}-switch")
    ctl.prepare(driver, ns, "hello")
    ctl.start(ns)
    try:
        ctl.create(driver, ns, "hello", replicas=REPLICAS, version="v1")
        timeline = Timeline(driver, ns, active="hello", preview="hello-preview")
        timeline.start()
        timeline.wait_synced()
        wait_settled(ctl, driver, timeline, ns, "hello")
        changes = []
        for i in range(promotions):
            changed = time.monotonic()
            ctl.change_template(driver, ns, "hello", f"v{i + 2}")
            wait_round(timeline, changed, REPLICAS, timeout=120)
            wait_settled(ctl, driver, timeline, ns, "hello")
            changes.append(changed)
        timeline.stop()
        stages = ctl.switch_stages()
        retries = preview_retries(f"{ns}/hello-preview")
        # Analysed once everything is in: a slow EndpointSlice update may come after the switch.
        rounds = (analyse_round(timeline, c, REPLICAS, retries) for c in changes)
        return [r for r in rounds if r], stages
    finally:
        ctl.stop()
        delete_namespace(ns)


def preview_retries(key: str) -> list[float]:
    """When (monotonic) kube-controller-manager requeued the Service ``key``; none where its
    log cannot be read."""
    log_path = controller_manager_log()
    if not log_path.exists():
        return []
    offset = time.time() - time.monotonic()
    with log_path.open(errors="replace") as lines:
        return [t - offset for t in slice_retries(lines, key, datetime.now().year)]


def all_healthy(ctl: Controller, driver: Driver, ns: str, apps: int) -> Callable[[], bool]:
    def check() -> bool:
        items = driver.list(ctl.app_kind, ns)
        return len(items) == apps and all(ctl.healthy(a) for a in items)

    return check


def scale(
    ctl: Controller, driver: Driver, apps: int, args: argparse.Namespace, restart: bool
) -> Obj:
    ns = fresh_namespace(f"peer-{ctl.key}-{apps}")
    names = [f"app{i:04d}" for i in range(apps)]
    for name in names:
        ctl.prepare(driver, ns, name)
    ctl.start(ns)
    try:
        result = converge(ctl, driver, ns, names, args)
        if restart:
            result |= restart_costs(ctl, ns, args)
        return result
    finally:
        ctl.stop()
        log(f"{ctl.title}: deleting {ns}")
        delete_namespace(ns)


def converge(
    ctl: Controller, driver: Driver, ns: str, names: list[str], args: argparse.Namespace
) -> Obj:
    cpu_start, rss_start = cpu_seconds(ctl.pid), rss_mib(ctl.pid)
    with Window() as converging:
        started = time.monotonic()
        for name in names:
            ctl.create(driver, ns, name, replicas=1, version="v1")
        created = time.monotonic() - started
        wait_for(
            all_healthy(ctl, driver, ns, len(names)),
            timeout=args.scale_timeout,
            interval=1,
            what=f"{len(names)} apps healthy",
        )
        healthy = time.monotonic() - started
        cpu = cpu_seconds(ctl.pid) - cpu_start
    log(f"{ctl.title}: {len(names)} apps healthy after {healthy:.1f} s; settling")
    settling = measured_for(args.settle_seconds)
    idle = measured_for(args.idle_seconds)
    return {
        "apps": len(names),
        "seconds_to_create": round(created, 1),
        "seconds_to_all_healthy": round(healthy, 1),
        "cpu_seconds_to_converge": round(cpu, 2),
        "rss_mib_start": round(rss_start, 1),
        "rss_mib_converged": round(rss_mib(ctl.pid), 1),
        "requests_converging": converging.requests,
        "settle_seconds": args.settle_seconds,
        "requests_settling": settling,
        "idle_seconds": args.idle_seconds,
        "requests_idle": idle,
    }


def restart_costs(ctl: Controller, ns: str, args: argparse.Namespace) -> Obj:
    ctl.stop()
    log(f"{ctl.title}: restart")
    with Window() as after_restart:
        ctl.start(ns)
        time.sleep(args.restart_seconds)
    ctl.stop()
    log(f"{ctl.title}: restart with a {args.resync_seconds} s resync")
    ctl.start(ns, resync_seconds=args.resync_seconds)
    time.sleep(args.warmup_seconds)
    resyncing = measured_for(args.resync_seconds * args.resync_periods)
    return {
        "restart_seconds": args.restart_seconds,
        "requests_after_restart": after_restart.requests,
        "resync_seconds": args.resync_seconds,
        "resync_periods": args.resync_periods,
        "requests_resyncing": resyncing,
    }


def since_change(r: Round) -> dict[str, float | None]:
    """A round's times, in seconds since its template change."""

    def since(t: float | None) -> float | None:
        return None if t is None else round(t - r.changed, 4)

    return {
        "changed": 0.0,
        "switched": since(r.switched),
        "pods_ready": since(r.pods_ready),
        "preview_ready": since(r.preview_ready),
        "slice_retries": r.slice_retries,
    }


def run_scenarios(
    controllers: list[Controller],
    driver: Driver,
    args: argparse.Namespace,
    save: Callable[[dict[str, Obj]], None],
) -> dict[str, Obj]:
    """Scenario by scenario, each controller in turn; ``save`` gets the results so far
    after each one."""

    def promotions(ctl: Controller) -> Any:
        rounds, stages = switch_latency(ctl, driver, args.promotions)
        if stages:
            results[ctl.key]["switch_stages"] = stages
        return [since_change(r) for r in rounds]

    def scale_of(apps: int) -> Callable[[Controller], Any]:
        return lambda ctl: scale(ctl, driver, apps, args, restart=apps == min(args.apps))

    scenarios = [("rounds", promotions)] + [(f"scale_{n}", scale_of(n)) for n in args.apps]
    results: dict[str, Obj] = {ctl.key: {} for ctl in controllers}
    for name, scenario in scenarios:
        for ctl in controllers:
            log(f"{ctl.title}: {name}")
            try:
                results[ctl.key][name] = scenario(ctl)
            except Exception as exc:  # one failed scenario must not lose the others' numbers
                log(f"{ctl.title}: {name} failed: {exc!r}")
                results[ctl.key][name] = {"error": repr(exc)}
            save(results)
    return results


def failures(results: dict[str, Obj]) -> list[str]:
    return [
        f"{key} {name} failed: {found['error']}"
        for key, result in results.items()
        for name, found in result.items()
        if isinstance(found, dict) and "error" in found
    ]


# --- the table --------------------------------------------------------------------------


Value = float | int | str | None
SWITCH_MEASURES = {
    "preview_ready": "preview endpoints all ready → prod switched",
    "pods_ready": "new pods all Ready → prod switched",
    "changed": "template change → prod switched",
}


def latencies_ms(rounds: list[Obj], start: str) -> list[float]:
    """From ``start`` to the switch, in the rounds where ``start`` came first."""
    return [
        (r["switched"] - r[start]) * 1000
        for r in rounds
        if r[start] is not None and r[start] <= r["switched"]
    ]


SWITCH_STAGES = {
    "queued": "… of which the event's wait for a pass (mean, ms)",
    "planned": "… the pass up to the switch request (mean, ms)",
    "written": "… the switch request to its answer (mean, ms)",
}


def switch_measures(rounds: list[Obj], stages: Obj | None = None) -> dict[str, Value]:
    """The latency rows; ``stages``: where the controller says its switches spent their
    time (mean ms by stage), shown under the mean from the preview's endpoints."""
    measures: dict[str, Value] = {}
    for start, label in SWITCH_MEASURES.items():
        values = latencies_ms(rounds, start)
        for q, name in ((50, "p50"), (90, "p90"), (100, "max")):
            measures[f"{label}, {name} (ms)"] = percentile(values, q) if values else None
        if start == "preview_ready":
            mean = round(sum(values) / len(values), 2) if values else None
            measures[f"{label}, mean (ms)"] = mean
            for stage, stage_label in SWITCH_STAGES.items():
                measures[stage_label] = (stages or {}).get(stage)
    measures |= controller_measures(rounds)
    early = sum(1 for r in rounds if not listed_first(r))
    measures["switched before the preview's EndpointSlices listed every new pod"] = (
        f"{early} of {len(rounds)}"
    )
    return measures


def controller_measures(rounds: list[Obj]) -> dict[str, Value]:
    """The EndpointSlice controller's share, the same for every controller being measured:
    from the new pods all Ready to the preview's slices listing them, and the rounds in
    which it requeued the preview (its first retry comes 1 s later)."""
    listed = [
        (r["preview_ready"] - r["pods_ready"]) * 1000
        for r in rounds
        if r["preview_ready"] is not None and r["pods_ready"] is not None
    ]
    measures: dict[str, Value] = {}
    for q, name in ((50, "p50"), (90, "p90"), (100, "max")):
        label = f"new pods all Ready → preview's EndpointSlices list them, {name} (ms)"
        measures[label] = percentile(listed, q) if listed else None
    retried = [r for r in rounds if r.get("slice_retries")]
    measures["rounds in which the EndpointSlice controller requeued the preview"] = (
        f"{len(retried)} of {len(rounds)}"
    )
    calm = latencies_ms([r for r in rounds if not r.get("slice_retries")], "pods_ready")
    measures["new pods all Ready → prod switched, p90 of the other rounds (ms)"] = (
        percentile(calm, 90) if calm else None
    )
    return measures


def listed_first(r: Obj) -> bool:
    return r["preview_ready"] is not None and r["preview_ready"] <= r["switched"]


def scale_measures(s: Obj) -> dict[str, Value]:
    n, settle, idle = f"{s['apps']:,}", f"{s['settle_seconds']:g}", f"{s['idle_seconds']:g}"
    return {
        f"{n} apps created → all healthy (s)": s["seconds_to_all_healthy"],
        f"controller CPU to converge {n} apps (s)": s["cpu_seconds_to_converge"],
        f"RSS converged, {n} apps (MiB)": s["rss_mib_converged"],
        f"writes in the {settle} s after all healthy, {n} apps": writes(s["requests_settling"]),
        f"writes in {idle} s idle after that, {n} apps": writes(s["requests_idle"]),
        f"GET/LIST in those {idle} s idle, {n} apps": get_list(s["requests_idle"]),
        f"WATCH requests in those {idle} s idle, {n} apps": s["requests_idle"].get("watch", 0),
    }


def restart_measures(s: Obj) -> dict[str, Value]:
    n, window = f"{s['apps']:,}", f"{s['restart_seconds']:g}"
    per_resync = get_list(s["requests_resyncing"]) / s["resync_periods"]
    return {
        f"GET/LIST in the {window} s after a restart, {n} apps": get_list(
            s["requests_after_restart"]
        ),
        f"writes in the {window} s after a restart, {n} apps": writes(s["requests_after_restart"]),
        f"GET/LIST per resync ({s['resync_seconds']} s period), {n} apps": round(per_resync),
    }


def measures(result: Obj) -> dict[str, Value]:
    """Every row of the table for one controller's results, in order."""
    rounds = result.get("rounds")
    stages = result.get("switch_stages")
    found = switch_measures(rounds, stages) if isinstance(rounds, list) else {}
    scales = [v for k, v in result.items() if k.startswith("scale_") and "error" not in v]
    for s in scales:
        found |= scale_measures(s)
    for s in scales:
        if "requests_after_restart" in s:
            found |= restart_measures(s)
    return found


def rows(results: dict[str, Obj]) -> list[tuple[str, Value, Value]]:
    """(measure, ours, Argo's) for every row of the table; None where one did not run."""
    ours, argo = (measures(results[k]) if k in results else {} for k in ("ours", "argo"))
    labels = list(ours) + [label for label in argo if label not in ours]
    return [(label, ours.get(label), argo.get(label)) for label in labels]


def writes(requests: dict[str, int]) -> int:
    return sum(requests.get(k, 0) for k in WRITES)


def get_list(requests: dict[str, int]) -> int:
    return requests.get("get", 0) + requests.get("list", 0)


def cell(value: Value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def ratio(ours: Value, argo: Value) -> str:
    """ours ÷ Argo's, where both are numbers and Argo's is not 0."""
    if isinstance(ours, int | float) and isinstance(argo, int | float) and argo:
        return f"{ours / argo:.2f}x"
    return "—"


def markdown(table: list[tuple[str, Value, Value]]) -> str:
    lines = [
        "| measure | bluegreen-operator | Argo Rollouts | ratio (ours ÷ Argo) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {cell(o)} | {cell(a)} | {ratio(o, a)} |" for m, o, a in table]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain") else "")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--apps",
        type=lambda s: sorted({int(n) for n in s.split(",")}),
        default=[200, 1000],
        help="app counts for the scale scenario, comma-separated (default 200,1000); "
        "the restart and resync costs are measured with the smallest",
    )
    parser.add_argument("--promotions", type=int, default=20, help="timed promotions (default 20)")
    parser.add_argument("--only", choices=["ours", "argo"], help="run one controller only")
    parser.add_argument("--settle-seconds", type=float, default=30)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--restart-seconds", type=float, default=30)
    parser.add_argument("--resync-seconds", type=int, default=20)
    parser.add_argument("--resync-periods", type=int, default=3)
    parser.add_argument(
        "--warmup-seconds", type=float, default=40, help="after the restart, before the resyncs"
    )
    parser.add_argument("--scale-timeout", type=float, default=1200)
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument(
        "--table-from", type=Path, metavar="JSON", help="print the table of a saved --json run"
    )
    return parser.parse_args()


def caption(header: Obj) -> str:
    versions = f"Argo Rollouts {header['argo_rollouts']}, " if "argo_rollouts" in header else ""
    baseline = header.get("requests_without_controller")
    zero = (
        ""
        if baseline is None
        else f" Requests counted in {BASELINE_SECONDS} s without a controller: "
        f"{sum(baseline.values())}."
    )
    return (
        f"{header['date']}, bluegreen-operator at commit {header['commit']}, {versions}"
        f"{header['cpus']} CPUs, load average {header['load_average_start']} at the start "
        f"and {header.get('load_average_end', '(unfinished)')} at the end.{zero}"
    )


def measure(args: argparse.Namespace) -> tuple[Obj, dict[str, Obj]]:
    """Run the scenarios: what the run was (header) and every number it measured; with
    --json, saved after each scenario."""
    ensure_cluster()
    # Room for the largest scenario, plus the pods of one being deleted.
    ensure_pod_capacity(max(args.apps) + 2 * REPLICAS + 100)
    log_dir = Path(tempfile.mkdtemp(prefix="bluegreen-peer-"))
    kubeconfig = controller_kubeconfig(log_dir)
    header: Obj = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "commit": commit(),
        "cpus": os.cpu_count(),
        "load_average_start": load_average(),
        "logs": str(log_dir),
        # The counting's zero: no controller runs, nobody else uses its identity.
        "requests_without_controller": measured_for(BASELINE_SECONDS),
    }

    def save(results: dict[str, Obj]) -> None:
        if args.json:
            report = {**header, "args": vars(args), "results": results}
            args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")

    with kubernetes.config.new_client_from_config(os.environ["KUBECONFIG"]) as api:
        driver = Driver(api)
        controllers: list[Controller] = []
        if args.only != "argo":
            controllers.append(BlueGreenOperator(kubeconfig, log_dir))
        if args.only != "ours":
            argo = ArgoRollouts(kubeconfig, log_dir)
            argo.install_crds()
            header["argo_rollouts"] = (argo.bin_dir / "VERSIONS").read_text().split()[1]
            controllers.append(argo)
        results = run_scenarios(controllers, driver, args, save)
    header["load_average_end"] = load_average()
    save(results)
    return header, results


def main() -> int:
    args = parse_args()
    if args.table_from:
        saved = json.loads(args.table_from.read_text())
        header, results = saved, saved["results"]
    else:
        header, results = measure(args)
    text = "\n".join([markdown(rows(results)), "", caption(header), *failures(results)]) + "\n"
    print(text + (f"Controller logs: {header['logs']}" if "logs" in header else ""))
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
