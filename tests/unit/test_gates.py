"""The gates in the pure core: every state of a check run and every transition, and what
the planner does with them (switch, wait, Degraded, switch back). No cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pydantic
import pytest

from bluegreen.api.models import BlueGreenAppSpec, BlueGreenAppStatus, CheckStatus, HttpCheck
from bluegreen.core import gates, names, status
from bluegreen.core.gates import Tally, Verdict
from bluegreen.core.planner import App, Observed, Plan, plan
from bluegreen.core.revision import revision_of

from builders import (
    NOW,
    OWNER,
    R1,
    R2,
    SMOKE,
    T1,
    T2,
    T3,
    app,
    body,
    checked,
    deployment,
    endpoints,
    key,
    observed,
    parts_of,
    preview_waiting,
    selector_color,
    service,
    spec,
    switched,
    verifying,
    writes,
)

Obj = dict[str, Any]

DB = {"name": "db", "job": {"template": {"spec": {"containers": [{"name": "t", "image": "t"}]}}}}
HTTP = HttpCheck(path="/api", successThreshold=2, failureThreshold=2)
OK, BAD = Verdict(True, "HTTP 200: ok"), Verdict(False, "HTTP 500: oops (expected 200)")


# ------------------------------------------------------------------ one run: fold()


def test_a_run_starts_pending_and_runs_with_its_first_answer() -> None:
    assert Tally().state == "Pending"
    assert gates.fold(Tally(), OK, HTTP, "preview") == Tally("Running", 1, 0, OK.text)
    assert gates.fold(Tally(), BAD, HTTP, "preview") == Tally("Running", 0, 1, BAD.text)


def test_consecutive_successes_pass_a_preview_run() -> None:
    once = gates.fold(Tally(), OK, HTTP, "preview")
    assert gates.fold(once, OK, HTTP, "preview").state == "Passed"


def test_a_failure_resets_the_success_streak_and_the_other_way_round() -> None:
    tally = gates.fold(gates.fold(Tally(), OK, HTTP, "preview"), BAD, HTTP, "preview")
    assert (tally.state, tally.successes, tally.failures) == ("Running", 0, 1)
    tally = gates.fold(tally, OK, HTTP, "preview")
    assert (tally.state, tally.successes, tally.failures) == ("Running", 1, 0)


def test_consecutive_failures_fail_a_run_at_either_stage() -> None:
    for stage in ("preview", "prod"):
        once = gates.fold(Tally(), BAD, HTTP, stage)  # type: ignore[arg-type]
        failed = gates.fold(once, BAD, HTTP, stage)  # type: ignore[arg-type]
        assert (failed.state, failed.failures, failed.message) == ("Failed", 2, BAD.text)


def test_successes_never_end_a_prod_verification() -> None:
    tally = Tally()
    for _ in range(10):
        tally = gates.fold(tally, OK, HTTP, "prod")
    assert (tally.state, tally.successes) == ("Running", 10)


@pytest.mark.parametrize("final", ["Passed", "Failed"])
def test_a_final_run_ignores_later_answers(final: str) -> None:
    tally = Tally(final, 2, 0, "x")  # type: ignore[arg-type]
    assert gates.fold(tally, OK, HTTP, "preview") == tally
    assert gates.fold(tally, BAD, HTTP, "preview") == tally


def test_long_answers_are_cut() -> None:
    tally = gates.fold(Tally(), Verdict(False, "x" * 5000), HTTP, "preview")
    assert len(tally.message) == gates.MAX_ANSWER_CHARS


@pytest.mark.parametrize(
    ("http", "code", "body", "ok"),
    [
        (HttpCheck(), 200, "fine", True),
        (HttpCheck(), 500, "oops", False),
        (HttpCheck(expectStatus=[200, 204]), 204, "", True),
        (HttpCheck(bodyContains="v2"), 200, "v2 host", True),
        (HttpCheck(bodyContains="v2"), 200, "v1 host", False),
    ],
)
def test_judge_response(http: HttpCheck, code: int, body: str, ok: bool) -> None:
    answer = gates.judge_response(http, code, body)
    assert answer.ok is ok
    assert answer.text.startswith(f"HTTP {code}")


# ------------------------------------------------------------------ the spec


def test_a_check_has_exactly_one_kind() -> None:
    with pytest.raises(pydantic.ValidationError, match="exactly one of http, job and prometheus"):
        spec(checks=[{"name": "x"}])
    with pytest.raises(pydantic.ValidationError, match="exactly one of http, job and prometheus"):
        spec(checks=[{"name": "x", "http": {}, "job": DB["job"]}])


def test_check_names_are_unique_and_ports_exist() -> None:
    with pytest.raises(pydantic.ValidationError, match="unique: smoke"):
        spec(checks=[SMOKE, SMOKE])
    with pytest.raises(pydantic.ValidationError, match="no port 'metrics'"):
        spec(checks=[{"name": "x", "http": {"port": "metrics"}}])
    assert spec(checks=[{"name": "x", "http": {"port": 80}}]).checks[0].http is not None


@pytest.mark.parametrize("raw", [None, "", "abc", "abc/", "abc/x", "abc/²", "abc/-1", "/"])
def test_a_mangled_mark_reads_as_none(raw: str | None) -> None:
    assert gates.parse_mark(raw) is None


def test_a_mark_round_trips() -> None:
    assert gates.parse_mark(gates.format_mark(R2, 7)) == (R2, 7)


def test_job_names_fit_a_label_and_differ_per_run() -> None:
    long_app = "a" * 55
    name = gates.job_name(long_app, "smoke", R2, 0)
    assert len(name) <= 63
    assert name != gates.job_name(long_app, "smoke", R2, 1)
    assert name != gates.job_name(long_app, "smoke", R1, 0)


# ------------------------------------------------------------------ evaluate()


def evaluate(s: BlueGreenAppSpec, started: bool = True, **kw: Any) -> gates.Gate:
    return gates.evaluate(
        s,
        kw.pop("stage", "preview"),
        kw.pop("revision", R2),
        started=started,
        tallies=kw.pop("tallies", {}),
        jobs=kw.pop("jobs", {}),
        recorded=kw.pop("recorded", None),
    )


def test_no_checks_is_an_open_gate() -> None:
    assert evaluate(spec(T2)).state == "Passed"


def test_checks_not_started_are_pending_started_ones_running() -> None:
    s = spec(T2, checks=[SMOKE, DB])
    assert evaluate(s, started=False).state == "Pending"
    gate = evaluate(s)
    assert gate.state == "Running"
    assert [c.state for c in gate.checks] == ["Running", "Running"]


def job(state: str | None, retry: int = 0, revision: str = R2) -> Obj:
    conditions = [{"type": state, "status": "True", "message": f"job {state}"}] if state else []
    return {
        "metadata": {
            "name": gates.job_name("demo", "db", revision, retry),
            "labels": {
                names.LABEL_CHECK: "db",
                names.LABEL_REVISION: revision,
                names.LABEL_CHECK_RETRY: str(retry),
            },
            "ownerReferences": [OWNER.reference()],
        },
        "status": {"conditions": conditions, "failed": 1 if state == "Failed" else 0},
    }


def test_every_check_passed_opens_the_gate() -> None:
    s = spec(T2, checks=[SMOKE, DB])
    gate = evaluate(s, tallies={key(): Tally("Passed", 2)}, jobs={key(check="db"): job("Complete")})
    assert gate.state == "Passed"
    assert [(c.name, c.state) for c in gate.checks] == [("smoke", "Passed"), ("db", "Passed")]


def test_one_failed_check_fails_the_gate_with_its_answer() -> None:
    s = spec(T2, checks=[SMOKE, DB])
    gate = evaluate(s, tallies={key(): Tally("Passed", 2)}, jobs={key(check="db"): job("Failed")})
    assert gate.state == "Failed"
    assert gate.failed is not None and gate.failed.name == "db"
    assert gate.failed.message == "job Failed"


def test_a_running_job_is_running() -> None:
    assert gates.job_tally(job(None)).state == "Running"


def test_results_of_another_revision_or_retry_do_not_count() -> None:
    s = spec(T2, checks=[SMOKE])
    for other in (key(revision=R1), key(retry=1), key(stage="prod")):
        assert evaluate(s, tallies={other: Tally("Passed", 2)}).state == "Running"


def test_a_final_state_survives_in_the_status_when_the_runner_forgot_it() -> None:
    """After a restart (or once the runner stopped probing) the status is the record."""
    s = spec(T2, checks=[SMOKE])
    before = CheckStatus(
        name="smoke", stage="preview", revision=R2, state="Failed", failures=2, message="HTTP 500"
    )
    gate = evaluate(s, recorded=BlueGreenAppStatus(checks=[before]))
    assert gate.state == "Failed" and gate.checks[0].message == "HTTP 500"
    running = before.model_copy(update={"state": "Running"})
    assert evaluate(s, recorded=BlueGreenAppStatus(checks=[running])).state == "Running"
    assert evaluate(s, started=False, recorded=BlueGreenAppStatus(checks=[running])).state == (
        "Pending"
    )


def test_a_retry_starts_the_checks_again() -> None:
    s = spec(T2, checks=[SMOKE], retryChecks=1)
    before = CheckStatus(name="smoke", stage="preview", revision=R2, retry=0, state="Failed")
    assert evaluate(s, recorded=BlueGreenAppStatus(checks=[before])).state == "Running"


def test_job_checks_do_not_verify_prod() -> None:
    gate = evaluate(spec(T2, checks=[SMOKE, DB]), stage="prod")
    assert [c.name for c in gate.checks] == ["smoke"]


def test_probes_only_for_unfinished_http_runs() -> None:
    s = spec(T2, checks=[SMOKE, {"name": "other", "http": {}}, DB])
    gate = evaluate(s, tallies={key(check="other"): Tally("Passed", 3)})
    live = {"spec": {"ports": [{"port": 80, "nodePort": 31234}]}}
    found = gates.probes(s, gate, "shop", "demo-preview", live)
    assert [(p.key.check, p.service, p.port, p.node_port) for p in found] == [
        ("smoke", "demo-preview", 80, 31234)
    ]


# ------------------------------------------------------------------ the planner: before the switch


def with_checks(obs: Observed, **extra: Any) -> Observed:
    return replace(obs, **extra)


def test_preview_not_ready_checks_are_pending_and_nothing_is_probed() -> None:
    p = plan(checked(promote=True), preview_waiting(ready=1), NOW)
    assert p.probes == ()
    assert [c.state for c in p.status.checks] == ["Pending"]
    assert p.status.phase == "Progressing"


@pytest.mark.parametrize("promote", [True, False])
def test_checks_wait_for_the_preview_endpoints_and_never_claim_to_have_passed(
    promote: bool,
) -> None:
    obs = observed(
        **{**parts_of(preview_waiting()), "eps": endpoints("demo-green", 3, ready=False)}
    )
    p = plan(checked(promote=promote), obs, NOW)
    assert (p.status.phase, p.status.reason) == ("Progressing", "WaitingForEndpoints")
    assert "its checks start once" in p.status.message and "0/3" in p.status.message
    assert [c.state for c in p.status.checks] == ["Pending"] and p.probes == ()


def test_ready_preview_is_checked_before_the_switch() -> None:
    p = plan(checked(promote=True), preview_waiting(), NOW)
    assert not p.switch.planned
    assert writes(p) == []
    assert (p.status.phase, p.status.reason) == ("Progressing", "Checking")
    assert "smoke Running" in p.status.message
    [probe] = p.probes
    assert (probe.key, probe.service, probe.port) == (key(), "demo-preview", 80)


def test_checks_run_without_promote_too_and_then_it_pauses() -> None:
    a = checked(promote=False)
    assert plan(a, preview_waiting(), NOW).status.reason == "Checking"
    done = with_checks(preview_waiting(), check_tallies={key(): Tally("Passed", 2)})
    p = plan(a, done, NOW)
    assert (p.status.phase, p.probes) == ("Paused", ())
    assert "its checks passed" in p.status.message


def test_every_check_passed_switches_prod_in_one_write() -> None:
    obs = with_checks(preview_waiting(), check_tallies={key(): Tally("Passed", 2)})
    p = plan(checked(promote=True), obs, NOW)
    assert p.switch.planned
    assert writes(p) == [("update", "Service", "demo")]
    assert selector_color(body(p, "Service", "demo")) == "green"
    assert [(c.name, c.state) for c in p.status.checks] == [("smoke", "Passed")]


def test_a_failed_check_blocks_the_switch_and_degrades_with_its_answer() -> None:
    tally = Tally("Failed", 0, 2, "HTTP 500: oops (expected 200)")
    obs = with_checks(preview_waiting(), check_tallies={key(): tally})
    p = plan(checked(promote=True), obs, NOW)
    assert not p.switch.planned and writes(p) == []
    assert (p.status.phase, p.status.reason) == ("Degraded", "CheckFailed")
    assert "check smoke failed" in p.status.message and "HTTP 500: oops" in p.status.message
    assert p.probes == ()  # a failed run is over
    written = status.after_pass(
        p, p.actions, [], generation=1, previous=BlueGreenAppStatus(), now=NOW
    )
    assert written.checks[0].state == "Failed" and written.checks[0].failures == 2


def test_a_new_template_runs_the_checks_again() -> None:
    failed = CheckStatus(name="smoke", stage="preview", revision=R2, state="Failed")
    a = replace(checked(T3, promote=True), recorded=BlueGreenAppStatus(checks=[failed]))
    p = plan(a, preview_waiting(T3), NOW)
    assert p.status.reason == "Checking"
    assert [p.key.revision for p in p.probes] == [revision_of(T3)]


def test_the_status_is_the_record_of_a_pass_after_a_restart() -> None:
    passed = CheckStatus(name="smoke", stage="preview", revision=R2, state="Passed", successes=2)
    a = replace(checked(promote=True), recorded=BlueGreenAppStatus(checks=[passed]))
    assert plan(a, preview_waiting(), NOW).switch.planned


def test_a_job_check_is_a_job_created_once_the_preview_is_ready() -> None:
    a = checked(promote=True, checks=[DB])
    assert writes(plan(a, preview_waiting(ready=1), NOW)) == []
    p = plan(a, preview_waiting(), NOW)
    name = gates.job_name("demo", "db", R2, 0)
    assert writes(p) == [("create", "Job", name)]
    created = body(p, "Job", name)
    assert created["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert created["metadata"]["labels"][names.LABEL_APP] == "demo"
    pod = created["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["PREVIEW_URL"] == "http://demo-preview.shop.svc:80"
    assert env["REVISION"] == R2
    assert not p.switch.planned


def test_a_failed_job_blocks_the_switch_a_complete_one_opens_it() -> None:
    a = checked(promote=True, checks=[DB])
    failed = plan(a, with_checks(preview_waiting(), jobs=[job("Failed")]), NOW)
    assert (failed.status.reason, failed.switch.planned, writes(failed)) == (
        "CheckFailed",
        False,
        [],
    )
    assert "job Failed" in failed.status.message
    assert plan(a, with_checks(preview_waiting(), jobs=[job("Complete")]), NOW).switch.planned


def test_check_jobs_of_other_runs_are_deleted() -> None:
    a = checked(promote=True, checks=[DB], retryChecks=1)
    p = plan(a, with_checks(preview_waiting(), jobs=[job("Failed", retry=0)]), NOW)
    assert ("delete", "Job", gates.job_name("demo", "db", R2, 0)) in writes(p)
    assert ("create", "Job", gates.job_name("demo", "db", R2, 1)) in writes(p)


def test_a_foreign_job_is_never_deleted() -> None:
    foreign = job("Failed", revision=R1)
    foreign["metadata"]["ownerReferences"] = []
    p = plan(
        checked(promote=True, checks=[DB]), with_checks(preview_waiting(), jobs=[foreign]), NOW
    )
    assert not [w for w in writes(p) if w[0] == "delete"]


# ------------------------------------------------------------------ the planner: after the switch


def test_after_the_switch_prod_is_verified_and_the_old_color_kept() -> None:
    p = plan(checked(promote=True), verifying(NOW - timedelta(seconds=5)), NOW)
    assert writes(p) == []
    [probe] = p.probes
    assert (probe.key, probe.service) == (key(stage="prod"), "demo")
    assert p.status.phase == "Healthy"
    assert "verifying: smoke Running" in p.status.message
    assert [(c.stage, c.state) for c in p.status.checks] == [("prod", "Running")]


def test_a_failed_verification_switches_back_in_one_write() -> None:
    tallies = {key(stage="prod"): Tally("Failed", 0, 2, "HTTP 500: broken")}
    p = plan(
        checked(promote=True), verifying(NOW - timedelta(seconds=5), check_tallies=tallies), NOW
    )
    assert p.switch.planned
    assert writes(p) == [("update", "Service", "demo")]
    prod = body(p, "Service", "demo")
    assert selector_color(prod) == "blue"
    annotations = prod["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_ROLLED_BACK] == f"{R2}/0"
    assert revision_of(_live_template(prod)) == R1  # prod records it serves R1 again
    assert (p.status.phase, p.status.reason) == ("Degraded", "RolledBack")
    assert R2 in p.status.message and "HTTP 500: broken" in p.status.message
    assert (p.status.active_color, p.status.active_revision) == ("blue", R1)
    assert p.status.rolled_back == (R2, 0)
    assert p.probes == ()


def _live_template(prod: Obj) -> Obj:
    import json

    return dict(json.loads(prod["metadata"]["annotations"][names.ANNOTATION_LIVE_TEMPLATE]))


def test_an_unavailable_new_color_switches_back_too() -> None:
    obs = verifying(NOW - timedelta(seconds=5))
    green = obs.deployments["green"]
    green["status"]["conditions"] = [
        {"type": "Available", "status": "False", "message": "minimum availability"}
    ]
    p = plan(checked(promote=True), obs, NOW)
    assert p.switch.planned and p.status.reason == "RolledBack"
    assert "not available" in p.status.message


def test_without_checks_there_is_no_verification() -> None:
    tallies = {key(stage="prod"): Tally("Failed", 0, 2, "x")}
    p = plan(
        app(T2, promote=True), verifying(NOW - timedelta(seconds=5), check_tallies=tallies), NOW
    )
    assert not p.switch.planned and p.probes == ()


def test_after_the_window_verification_ends_passed_and_the_old_color_scales_down() -> None:
    prod_run = CheckStatus(name="smoke", stage="prod", revision=R2, state="Running", successes=12)
    a = replace(checked(promote=True), recorded=BlueGreenAppStatus(checks=[prod_run]))
    p = plan(a, verifying(NOW - timedelta(seconds=31)), NOW)
    assert writes(p) == [("update", "Deployment", "demo-blue")]
    assert p.probes == ()
    assert [(c.stage, c.state, c.successes) for c in p.status.checks] == [("prod", "Passed", 12)]


def rolled_back_state(**fields: Any) -> tuple[App, Observed]:
    """After the switch back: blue serves R1 again, green still runs R2 behind preview."""
    s = spec(T2, checks=[SMOKE], **fields)
    record = {**switched(NOW - timedelta(seconds=3), R2), names.ANNOTATION_ROLLED_BACK: f"{R2}/0"}
    obs = observed(
        blue=deployment("blue", T1, 3),
        green=deployment("green", T2, 3),
        prod=service("prod", "blue", s, record, live=T1),
        preview=service("preview", "green", s),
        eps=endpoints("demo-green", 3),
    )
    passed = CheckStatus(name="smoke", stage="preview", revision=R2, state="Passed", successes=2)
    recorded = BlueGreenAppStatus(checks=[passed])
    return App(
        owner=OWNER,
        generation=2,
        spec=spec(T2, checks=[SMOKE], promote=True, **fields),
        recorded=recorded,
    ), obs


def test_a_switched_back_revision_is_never_promoted_again() -> None:
    a, obs = rolled_back_state()
    p = plan(a, obs, NOW)
    assert not p.switch.planned and p.probes == ()
    assert (p.status.phase, p.status.reason) == ("Degraded", "RolledBack")
    assert p.status.rolled_back == (R2, 0)
    assert writes(p) == []  # the mark stays on the prod Service: no write


def test_the_switch_backs_message_and_failed_check_stay_while_the_spec_asks_for_it() -> None:
    a, obs = rolled_back_state()
    failed = CheckStatus(name="smoke", stage="prod", revision=R2, state="Failed", failures=2)
    recorded = a.recorded.model_copy(  # type: ignore[union-attr]
        update={
            "checks": [*a.recorded.checks, failed],  # type: ignore[union-attr]
            "message": "revision x failed after the switch (check smoke: HTTP 500)",
            "rolledBackRevision": R2,
        }
    )
    p = plan(replace(a, recorded=recorded), obs, NOW)
    assert p.status.message == recorded.message  # the same words: no second Warning Event
    assert [(c.stage, c.state) for c in p.status.checks] == [
        ("preview", "Passed"),
        ("prod", "Failed"),
    ]


def test_the_mark_falls_back_on_the_status_when_the_service_lost_it() -> None:
    a, obs = rolled_back_state()
    prod = service("prod", "blue", a.spec, switched(NOW - timedelta(seconds=3), R2), live=T1)
    obs = observed(**{**parts_of(obs), "prod": prod})
    a = replace(a, recorded=BlueGreenAppStatus(rolledBackRevision=R2, rolledBackRetry=0))
    assert plan(a, obs, NOW).status.reason == "RolledBack"


def test_a_retry_allows_the_switched_back_revision_again() -> None:
    a, obs = rolled_back_state(retryChecks=1)
    p = plan(a, obs, NOW)
    assert p.status.reason == "Checking" and p.status.rolled_back is None
    assert [probe.key.retry for probe in p.probes] == [1]


def test_a_new_template_ends_the_mark() -> None:
    a, obs = rolled_back_state()
    a = replace(a, spec=spec(T3, checks=[SMOKE], promote=True))
    p = plan(a, obs, NOW)
    assert p.status.rolled_back is None and p.status.reason != "RolledBack"


def test_reverting_to_the_live_revision_after_a_switch_back_verifies_nothing() -> None:
    """prod is back on R1 and the template says R1 again: R2 (the failed one) still runs on
    the other color during the window, and prod must never be switched onto it."""
    a, obs = rolled_back_state()
    a = replace(a, spec=spec(T1, checks=[SMOKE], promote=True))
    failing = {key(stage="prod", revision=R1): Tally("Failed", 0, 2, "HTTP 500")}
    p = plan(a, replace(obs, check_tallies=failing), NOW)
    assert not p.switch.planned and p.probes == ()
    assert p.status.phase == "Healthy" and p.status.rolled_back is None
    # preview goes back to the live color; the prod Service keeps the mark: no write to it
    assert writes(p) == [("update", "Service", "demo-preview")]


def test_a_new_template_after_a_switch_back_is_checked_and_promoted() -> None:
    a, obs = rolled_back_state()
    a = replace(a, spec=spec(T3, checks=[SMOKE], promote=True))
    obs = replace(obs, check_tallies={key(revision=revision_of(T3)): Tally("Passed", 2)})
    obs = observed(**{**parts_of(obs), "green": deployment("green", T3, 3)})
    p = plan(
        a, replace(obs, check_tallies={key(revision=revision_of(T3)): Tally("Passed", 2)}), NOW
    )
    assert p.switch.planned
    prod = body(p, "Service", "demo")
    assert names.ANNOTATION_ROLLED_BACK not in prod["metadata"]["annotations"]


def test_the_status_keeps_the_mark_and_a_stopped_pass_too() -> None:
    a, obs = rolled_back_state()
    p: Plan = plan(a, obs, NOW)
    written = status.after_pass(
        p, p.actions, [], generation=2, previous=BlueGreenAppStatus(), now=NOW
    )
    assert (written.rolledBackRevision, written.rolledBackRetry) == (R2, 0)
    stopped = status.stopped("Forbidden", "x", generation=2, previous=written, now=NOW)
    assert stopped.rolledBackRevision == R2 and stopped.checks == written.checks


def test_a_switch_back_that_was_not_written_is_not_reported_as_done() -> None:
    tallies = {key(stage="prod"): Tally("Failed", 0, 2, "HTTP 500: broken")}
    p = plan(
        checked(promote=True), verifying(NOW - timedelta(seconds=5), check_tallies=tallies), NOW
    )
    written = status.after_pass(p, [], [], generation=1, previous=BlueGreenAppStatus(), now=NOW)
    assert (written.activeColor, written.phase) == ("green", "Degraded")
    assert written.rolledBackRevision is None
