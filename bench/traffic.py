"""Switches under real traffic on a real node; prints tables, draws charts, asserts nothing.

    make bench-traffic                                   # or:
    .venv/bin/python bench/traffic.py --runs 3 --delays 30,0 --rate 150 --charts docs

For each scaleDownDelaySeconds: the app (3 replicas of hack/testserver, on the real node)
serves v1 under an open-loop load (new connection per request, 2 s timeout) sent to its
NodePort on 127.0.0.1 through kube-proxy; v2 is applied with promote: true; the load runs
through the switch and the old color's scale-down until its pods are gone. Per delay it
prints the totals, a per-second table around the switch of one run (the first that lost
requests, else the first), how long new connections still reached the old version after
the selector changed (kube-proxy's lag), and writes a chart
``<charts>/traffic-delay-<delay>.png``.

Then, per delay of ``--paths-delays``: the same switch seen from four paths at once (one
load generator each, ``--rate`` / 4 requests/s): new connections and keep-alive clients
through kube-proxy (the NodePort) and through the proxy (Traefik, hack/edge.sh, by the
app's HTTPRoute): requests, failures, and the switch write → the last old answer of each.
Its chart is ``<charts>/traffic-proxy-delay-<delay>.png`` (keep-alive through the proxy).

Needs root and a host that can run hack/real-node.sh (started here when it is not up).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness import ensure_cluster, fresh_namespace  # noqa: E402

import edge  # noqa: E402
import realnode  # noqa: E402
from driver import Driver  # noqa: E402
from kubehelpers import wait_for  # noqa: E402
from loadgen import LoadGenerator, Result, Run, per_second  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402
from traffic import (  # noqa: E402
    Outcome,
    Outcomes,
    Timeline,
    deploy_v1,
    switch_under_load,
    switch_under_loads,
)


def save_csv(outcome: Outcome, path: Path) -> None:
    """Every request of a run, for a closer look (time in seconds since the load started)."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["sent", "done", "status", "version", "error"])
        for r in outcome.run.results:
            out.writerow([f"{r.sent:.4f}", f"{r.done:.4f}", r.status, r.version, r.error])
        out.writerow([])
        out.writerow(["event", "at"])
        for event, at in vars(outcome.timeline).items():
            out.writerow([event, "" if at is None else f"{at:.3f}"])


def load_csv(path: Path) -> Outcome:
    """A run saved by ``save_csv``, to redraw its chart (``--replot``)."""
    results, timeline = [], Timeline()
    with path.open(newline="") as f:
        rows = iter(csv.reader(f))
        next(rows)
        for row in rows:
            if not row:
                break
            sent, done, status, version, error = row
            results.append(
                Result(
                    float(sent),
                    float(done),
                    int(status) if status else None,
                    version or None,
                    error or None,
                )
            )
        next(rows)
        for event, at in rows:
            setattr(timeline, event, float(at) if at else None)
    return Outcome(Run(results), timeline, "", "")


def one_run(
    driver: Driver, delay: int, rate: float, index: int, log_dir: Path, keepalive: bool = False
) -> Outcome:
    kind = "keepalive" if keepalive else "new"
    ns = fresh_namespace(f"bench-traffic-{kind}-{delay}-{index}")
    op = OperatorProcess(ns, log_dir / f"operator-{delay}-{index}.log")
    op.start()
    try:
        port = deploy_v1(driver, ns, "web")
        outcome = switch_under_load(
            driver, ns, "web", port, rate=rate, delay=delay, keepalive=keepalive
        )
        save_csv(outcome, log_dir / f"requests-{kind}-{delay}-{index}.csv")
        return outcome
    finally:
        op.stop()
        # its pods end on the real node while the next run starts
        subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], capture_output=True)


def kube_proxy_lag(outcome: Outcome) -> tuple[float | None, float | None]:
    """(first new-version answer, last old-version answer), in seconds after the prod
    selector was seen changed, counting requests by the time they were sent (each one a
    new connection, so each one a fresh pick by kube-proxy's rules)."""
    switched = outcome.timeline.switched
    if switched is None:
        return None, None
    ok = [r for r in outcome.run.results if r.ok]
    first_new = min((r.sent for r in ok if r.version == "v2"), default=None)
    last_old = max((r.sent for r in ok if r.version == "v1"), default=None)
    return (
        None if first_new is None else first_new - switched,
        None if last_old is None else last_old - switched,
    )


def errors_by_kind(run: Run) -> Counter[str]:
    return Counter(r.error or f"HTTP {r.status}" for r in run.failures)


def table(outcome: Outcome, before: int = 3, after: int = 6) -> str:
    tl = outcome.timeline
    switched = int(tl.switched or 0)
    end = int(tl.old_pods_gone or switched) + after
    marks = {
        int(t): label
        for t, label in (
            (tl.preview_ready, "preview ready"),
            (tl.switched, "prod switched"),
            (tl.scaled_down, "old color scaled to 0"),
            (tl.old_pods_gone, "old pods gone"),
        )
        if t is not None
    }
    rows = [
        "| second | sent | ok | failed | v1 | v2 | event |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    shown = set(range(switched - before, switched + after + 1))
    shown |= set(range(int(tl.scaled_down or switched) - 1, end + 1))
    for s, ok, failed, versions in per_second(outcome.run):
        if s not in shown:
            continue
        rows.append(
            f"| {s - switched:+d} | {ok + failed} | {ok} | {failed} | {versions.get('v1', 0)} "
            f"| {versions.get('v2', 0)} | {marks.get(s, '')} |"
        )
    return "\n".join(rows)


def chart(outcome: Outcome, delay: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # 0.2 s bins, scaled to requests per second: a switch takes well under a second
    width = 0.2
    last = int(max(r.sent for r in outcome.run.results) / width) + 1
    starts = [i * width for i in range(last + 1)]
    v1, v2, failed = [0.0] * len(starts), [0.0] * len(starts), [0.0] * len(starts)
    for r in outcome.run.results:
        i = int(r.sent / width)
        series = failed if not r.ok else v1 if r.version == "v1" else v2
        series[i] += 1 / width
    seconds = starts
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    ax.stackplot(
        seconds,
        v1,
        v2,
        labels=["v1 (old color)", "v2 (new color)"],
        step="post",
        colors=["#4c72b0", "#55a868"],
        alpha=0.85,
    )
    ax.step(seconds, failed, where="post", color="#c44e52", linewidth=2, label="failed")
    tl = outcome.timeline
    for t, label, style in (
        (tl.switched, "switch", "-"),
        (tl.scaled_down, "old color scaled to 0", "--"),
        (tl.old_pods_gone, "old pods gone", ":"),
    ):
        if t is not None:
            ax.axvline(t, color="black", linestyle=style, linewidth=1)
            ax.text(t, ax.get_ylim()[1] * 0.97, f" {label}", rotation=90, va="top", fontsize=8)
    lost = len(outcome.run.failures)
    ax.set_title(
        f"scaleDownDelaySeconds={delay}: {len(outcome.run.results)} requests, {lost} failed"
    )
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("requests/s by send time (0.2 s bins)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(delay: int, outcomes: list[Outcome], charts: Path | None) -> None:
    total = sum(len(o.run.results) for o in outcomes)
    failed = sum(len(o.run.failures) for o in outcomes)
    with_errors = sum(1 for o in outcomes if o.run.failures)
    print(f"\n## scaleDownDelaySeconds: {delay}\n")
    print(
        f"{len(outcomes)} runs, {total} requests, {failed} failed, runs with errors: {with_errors}"
    )
    kinds: Counter[str] = Counter()
    for o in outcomes:
        kinds += errors_by_kind(o.run)
    if kinds:
        print(f"errors: {dict(kinds)}")
    print(
        "\n| run | requests | failed | first v2 after switch | last v1 after switch "
        "| prod EndpointSlices without old pods |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for i, o in enumerate(outcomes, 1):
        first_new, last_old = kube_proxy_lag(o)
        fmt = lambda x: "-" if x is None else f"{x:+.2f} s"  # noqa: E731
        moved = o.timeline.slices_moved
        slices = (
            None if moved is None or o.timeline.switched is None else moved - o.timeline.switched
        )
        print(
            f"| {i} | {len(o.run.results)} | {len(o.run.failures)} | {fmt(first_new)} "
            f"| {fmt(last_old)} | {fmt(slices)} |"
        )
    for i, o in enumerate(outcomes, 1):
        switched = o.timeline.switched or 0.0
        for r in o.run.failures[:20]:
            what = r.error or f"HTTP {r.status}"
            print(f"  run {i}: sent {r.sent - switched:+.2f} s after the switch: {what}")
    shown = next((o for o in outcomes if o.run.failures), outcomes[0])
    print(f"\nper second around the switch (run {outcomes.index(shown) + 1}; second 0 = switch):\n")
    print(table(shown))
    if charts is not None:
        path = charts / f"traffic-delay-{delay}.png"
        chart(shown, delay, path)
        print(f"\nchart: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


PATHS = (
    "proxy, keep-alive",
    "proxy, new connections",
    "kube-proxy, keep-alive",
    "kube-proxy, new connections",
)


def paths_run(driver: Driver, proxy: edge.Edge, delay: int, rate: float, log_dir: Path) -> Outcomes:
    """One switch, four loads at once: both client kinds through kube-proxy and the proxy."""
    ns = fresh_namespace(f"bench-paths-{delay}")
    host = f"web.{ns}.gateway.test"
    op = OperatorProcess(ns, log_dir / f"operator-paths-{delay}.log")
    op.start()
    try:
        gateway = {"parentRefs": [proxy.parent_ref()], "hostnames": [host]}
        port = deploy_v1(driver, ns, "web", gateway=gateway)
        wait_for(lambda: proxy.answer(host) == "v1", timeout=30, what="v1 through the proxy")
        each, seconds = rate / len(PATHS), delay + 90

        def load(through_proxy: bool, keepalive: bool) -> LoadGenerator:
            if through_proxy:
                return LoadGenerator(
                    "127.0.0.1", proxy.port, each, seconds, keepalive=keepalive, host_header=host
                )
            return LoadGenerator("127.0.0.1", port, each, seconds, keepalive=keepalive)

        loads = {label: load(label.startswith("proxy"), "keep-alive" in label) for label in PATHS}
        return switch_under_loads(driver, ns, "web", loads, delay=delay)
    finally:
        op.stop()
        subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], capture_output=True)


def paths_report(delay: int, outcome: Outcomes, charts: Path | None) -> None:
    switched = outcome.timeline.switched
    print(f"\n## kube-proxy and the proxy, scaleDownDelaySeconds: {delay}\n")
    print("| path | clients | requests | failed | switch write → last v1 answer |")
    print("|---|---|---:|---:|---:|")
    for label in PATHS:
        run = outcome.runs[label]
        last = outcome.last_answer(label, "v1")
        lag = "-" if last is None or switched is None else f"{last - switched:+.2f} s"
        path, clients = label.split(", ")
        print(f"| {path} | {clients} | {len(run.results)} | {len(run.failures)} | {lag} |")
    for label in PATHS:
        for r in outcome.runs[label].failures[:10]:
            at = r.sent - outcome.offsets[label] - (switched or 0.0)
            print(f"  {label}: sent {at:+.2f} s after the switch: {r.error or f'HTTP {r.status}'}")
    if charts is not None:
        first = outcome.runs[PATHS[0]]
        path = charts / f"traffic-proxy-delay-{delay}.png"
        chart(Outcome(first, outcome.timeline, "", ""), delay, path)
        print(f"\nchart (keep-alive through the proxy): {path.relative_to(REPO)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delays", default="30,0", help="scaleDownDelaySeconds values")
    parser.add_argument("--rate", type=float, default=150, help="requests per second")
    parser.add_argument("--charts", type=Path, default=REPO / "docs", help="where the PNGs go")
    parser.add_argument("--no-charts", action="store_true")
    parser.add_argument(
        "--keepalive-runs",
        type=int,
        default=2,
        help="runs with keep-alive clients at the first delay (no chart)",
    )
    parser.add_argument(
        "--paths-delays",
        default="30,2",
        help="delays of the kube-proxy / proxy comparison (empty: none)",
    )
    parser.add_argument(
        "--replot", nargs=2, metavar=("CSV", "DELAY"), help="only redraw a saved run's chart"
    )
    args = parser.parse_args()
    if args.replot:
        chart(
            load_csv(Path(args.replot[0])),
            int(args.replot[1]),
            args.charts / f"traffic-delay-{args.replot[1]}.png",
        )
        return 0
    reason = realnode.unsupported_reason()
    if reason:
        print(f"this host cannot run a real node: {reason}")
        return 1
    ensure_cluster()
    started = realnode.up()
    log_dir = Path(tempfile.mkdtemp(prefix="bluegreen-bench-traffic-"))
    charts = None if args.no_charts else args.charts
    try:
        with kubernetes.config.new_client_from_config(os.environ["KUBECONFIG"]) as api:
            driver = Driver(api)
            delays = [int(d) for d in args.delays.split(",")]
            for delay in delays if args.runs else []:
                outcomes = [one_run(driver, delay, args.rate, i, log_dir) for i in range(args.runs)]
                report(delay, outcomes, charts)
            if args.keepalive_runs:
                outcomes = [
                    one_run(driver, delays[0], args.rate, i, log_dir, keepalive=True)
                    for i in range(args.keepalive_runs)
                ]
                print("\n# keep-alive clients (10 connections, each kept open)")
                report(delays[0], outcomes, None)
            paths_delays = [int(d) for d in args.paths_delays.split(",") if d]
            if paths_delays:
                proxy, proxy_started = edge.up()
                try:
                    for delay in paths_delays:
                        paths_report(
                            delay, paths_run(driver, proxy, delay, args.rate, log_dir), charts
                        )
                finally:
                    if proxy_started:
                        edge.down()
    finally:
        if started:
            realnode.down()
    print(f"\noperator logs: {log_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
