"""The scale benchmark's table (bench/scale.py): per-app costs and the sizes side by side.
No cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import scale  # noqa: E402


def result(apps: int, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {key: 0 for _, key, _ in scale.ROWS}
    base.update(apps=apps, rss_start_mib=60.0, restart_30s={}, release_to_all_scaled_down_s=1)
    base.update(values)
    return base


def row(text: str, label: str, nth: int = 0) -> list[str]:
    found = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    return [cell.strip() for cell in found[nth].strip("|").split("|")][1:]


def test_one_column_per_size() -> None:
    text = scale.table([result(200), result(5000)])
    assert text.splitlines()[0] == "| measure | 200 apps | 5,000 apps |"


def test_cpu_per_app_divides_by_the_apps() -> None:
    text = scale.table([result(1000, create_cpu_s=16.6), result(5000, create_cpu_s=95.0)])
    assert row(text, "operator CPU to converge (s)") == ["16.6", "95"]
    # the "… per app" line right under it
    lines = text.splitlines()
    under = lines[lines.index(next(x for x in lines if "CPU to converge" in x)) + 1]
    assert under == "| … per app | 0.0166 | 0.019 |"


def test_memory_per_app_is_above_the_operator_without_apps() -> None:
    text = scale.table([result(1000, rss_converged_mib=160.0)])  # 100 MiB above 60
    label = "… per app, above the operator with no app (KiB)"
    assert row(text, label) == ["102"]  # 100 MiB * 1024 / 1,000 apps


def test_a_measure_an_older_run_lacks_shows_a_dash() -> None:
    old = result(1000)
    del old["release_to_all_scaled_down_s"]
    assert row(scale.table([old, result(5000)]), "… → every old color scaled down (s)") == [
        "—",
        "1",
    ]


def test_reads_after_a_restart_count_gets_and_lists_only() -> None:
    counts = {"LIST deployments/": 4, "GET bluegreenapps/": 1, "WATCH services/": 6}
    text = scale.table([result(1000, restart_30s=counts)])
    assert row(text, "GET/LIST in the 30 s after a restart") == ["5"]


# ---------------------------------------------------------------- py-spy's samples, read

import sampling  # noqa: E402

RAW = "".join(
    f"{stack} {n}\n"
    for stack, n in [
        (
            "thread (101): MainThread;<module> (bluegreen/__main__.py:10);"
            "run (asyncio/runners.py:118);loads (json/__init__.py:346)",
            6,
        ),
        (
            "thread (102): reconcile_0;Thread._bootstrap (threading.py:1002);"
            "_worker (concurrent/futures/thread.py:83);"
            "reconcile (bluegreen/runtime/reconciler.py:70);plan (bluegreen/core/planner.py:61)",
            3,
        ),
        (
            "thread (103): reconcile_7;Thread._bootstrap (threading.py:1002);"
            "reconcile (bluegreen/runtime/reconciler.py:99);loads (json/__init__.py:346)",
            1,
        ),
        (
            "thread (104): watch-deployment-all;_events (bluegreen/runtime/informer.py:225);"
            "SSLSocket.read (ssl.py:1134)",
            10,
        ),
    ]
)


def test_samples_are_shared_out_by_thread_pool_and_function(tmp_path: Path) -> None:
    raw = tmp_path / "release.spy.txt"
    raw.write_text(RAW)
    got = sampling.summary(raw)
    assert got["samples"] == 20
    # a thread sampled in a socket read waits for the API server: not CPU, counted apart
    assert got["waiting"] == 0.5
    # the workers of one pool are one group, whatever their number
    assert got["threads"] == {"MainThread": 0.6, "reconcile": 0.4}
    # the running function, whichever line of it ran
    assert got["self"] == {"loads (json/__init__.py)": 0.7, "plan (bluegreen/core/planner.py)": 0.3}
    # every function on a stack, once per stack; the threads' own start is left out
    assert got["inclusive"]["reconcile (bluegreen/runtime/reconciler.py)"] == 0.4
    assert not any(name.startswith("Thread.") for name in got["inclusive"])


def test_no_samples_is_an_empty_summary(tmp_path: Path) -> None:
    assert sampling.summary(None) == {}
    assert sampling.summary(tmp_path / "never-written.txt") == {}
