"""Gates: the checks a new revision must pass before the switch, and keep passing after it.

Pure, like the planner that calls it: no client, no clock, no sockets. The check runner
(:mod:`bluegreen.runtime.checker`) sends the HTTP requests and the Prometheus queries
(judged in :mod:`bluegreen.core.promql`) and folds each verdict into a :class:`Tally` with
:func:`fold`; the Job checks are the Jobs' own conditions. From those,
:func:`evaluate` says where each check stands for one revision and whether the gate is
open, and the planner decides: switch, wait, or (after a switch) switch back.

A check runs once per *run*: one check, one stage, one revision, one ``spec.retryChecks``.
A run that passed or failed is final: nothing runs it again until the template (a new
revision) or ``spec.retryChecks`` changes. A run's final state is recorded in the status,
so a restarted operator neither re-runs a passed check nor forgets a failed one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from bluegreen.api.models import (
    BlueGreenAppSpec,
    BlueGreenAppStatus,
    Check,
    CheckStage,
    CheckState,
    CheckStatus,
    HttpCheck,
    PrometheusCheck,
)
from bluegreen.core import names
from bluegreen.core.objects import Obj

FINAL: frozenset[CheckState] = frozenset({"Passed", "Failed"})
# The longest answer kept for the status and Events: enough to say what went wrong.
MAX_ANSWER_CHARS = 300


@dataclass(frozen=True)
class RunKey:
    """One run of one check: which check, before or after the switch, of which revision,
    under which ``spec.retryChecks``."""

    check: str
    stage: CheckStage
    revision: str
    retry: int


@dataclass(frozen=True)
class Verdict:
    """One probe's outcome: a success or not, and what was seen (``HTTP 500: oops``).
    ``counted``: False for an answer that is neither (a Prometheus check's no data or
    error under ``Wait``); ``value``: a Prometheus check's deciding value."""

    ok: bool
    text: str
    counted: bool = True
    value: str | None = None


@dataclass(frozen=True)
class Tally:
    """Where one run stands: its state, its current streaks, and the last answer."""

    state: CheckState = "Pending"
    successes: int = 0
    failures: int = 0
    message: str = ""
    value: str | None = None


class Thresholds(Protocol):
    """What :func:`fold` reads of a check (an HTTP or a Prometheus check)."""

    @property
    def successThreshold(self) -> int: ...

    @property
    def failureThreshold(self) -> int: ...


def fold(tally: Tally, verdict: Verdict, check: Thresholds, stage: CheckStage) -> Tally:
    """Fold one verdict into a run. Consecutive successes pass a check before the switch;
    after it (``prod``) successes never end the run: it verifies until the rollback window
    closes. Consecutive failures fail it at either stage. A verdict not counted leaves the
    streaks as they are (and shows). A final run stays as it is."""
    if tally.state in FINAL:
        return tally
    text = verdict.text[:MAX_ANSWER_CHARS]
    if not verdict.counted:
        return Tally("Running", tally.successes, tally.failures, text, verdict.value)
    if verdict.ok:
        streak = tally.successes + 1
        passed = stage == "preview" and streak >= check.successThreshold
        return Tally("Passed" if passed else "Running", streak, 0, text, verdict.value)
    streak = tally.failures + 1
    failed = streak >= check.failureThreshold
    return Tally("Failed" if failed else "Running", 0, streak, text, verdict.value)


def judge_response(http: HttpCheck, status: int, body: str) -> Verdict:
    """Whether one HTTP response passes the check, and a short account of it."""
    snippet = " ".join(body.split())[:120]
    text = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if status not in http.expectStatus:
        expected = ", ".join(str(s) for s in http.expectStatus)
        return Verdict(False, f"{text} (expected {expected})")
    if http.bodyContains is not None and http.bodyContains not in body:
        return Verdict(False, f"{text} (the body lacks {http.bodyContains!r})")
    return Verdict(True, text)


# ---------------------------------------------------------------- what to probe


@dataclass(frozen=True)
class Query:
    """A Prometheus check's query as it is sent: its placeholders filled."""

    check: PrometheusCheck
    promql: str


@dataclass(frozen=True)
class Probe:
    """What the runner is asked to probe: one run of an HTTP check against one Service, or
    (``query``) of a Prometheus check about the pods that Service selects. ``node_port`` is
    the Service port's node port, when it has one (an operator outside the cluster may be
    told to probe through it)."""

    key: RunKey
    namespace: str
    service: str
    port: int
    node_port: int | None
    http: HttpCheck | None
    query: Query | None = None

    @property
    def check(self) -> HttpCheck | PrometheusCheck:
        """The check's settings (timeout, interval, thresholds)."""
        if self.http is not None:
            return self.http
        assert self.query is not None, "a probe is of an HTTP or a Prometheus check"
        return self.query.check


_PLACEHOLDER = re.compile(r"{{\s*(app|namespace|color|revision)\s*}}")


def render_query(query: str, *, app: str, namespace: str, color: str, revision: str) -> str:
    """The query with its placeholders replaced (the models refuse unknown ones)."""
    values = {"app": app, "namespace": namespace, "color": color, "revision": revision}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)


def selected(service: Obj | None) -> tuple[str, str] | None:
    """The app and the color a Service of ours selects: the pods a check of it is about."""
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    app, color = selector.get(names.LABEL_APP), selector.get(names.LABEL_COLOR)
    return (str(app), str(color)) if app and color else None


def service_port(spec: BlueGreenAppSpec, wanted: int | str | None) -> int | None:
    """The Service port a check names (by number or name; None: the first), or None when
    the Services have no such port."""
    ports = spec.service.ports
    if wanted is None:
        return ports[0].port
    for port in ports:
        if wanted in (port.port, port.name):
            return port.port
    return None


def node_port_of(service: Obj | None, port: int) -> int | None:
    for entry in ((service or {}).get("spec") or {}).get("ports") or []:
        if entry.get("port") == port and entry.get("nodePort"):
            return int(entry["nodePort"])
    return None


def http_checks(spec: BlueGreenAppSpec) -> list[Check]:
    return [c for c in spec.checks if c.http is not None]


def probed_checks(spec: BlueGreenAppSpec) -> list[Check]:
    """The checks the runner probes (HTTP and Prometheus): before the switch, and again
    after it, while the previous color still runs."""
    return [c for c in spec.checks if c.http is not None or c.prometheus is not None]


def job_checks(spec: BlueGreenAppSpec) -> list[Check]:
    return [c for c in spec.checks if c.job is not None]


# ---------------------------------------------------------------- Job checks


def job_name(app: str, check: str, revision: str, retry: int) -> str:
    """``<app>-check-<hash>``: unique per run, and at most 63 characters (the Job
    controller puts the name in a label of its pods)."""
    digest = hashlib.sha256(f"{check}/{revision}/{retry}".encode()).hexdigest()[:10]
    return names.check_job_name(app, digest)


def job_tally(job: Obj | None) -> Tally:
    """A Job check's state from the Job's conditions: Complete passes, Failed fails."""
    if job is None:
        return Tally()
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        message = str(cond.get("message") or cond.get("reason") or "")[:MAX_ANSWER_CHARS]
        if cond.get("type") == "Complete":
            return Tally("Passed", int(status.get("succeeded", 1)), 0, message or "completed")
        if cond.get("type") == "Failed":
            return Tally("Failed", 0, int(status.get("failed", 1)), message or "failed")
    return Tally("Running", int(status.get("succeeded", 0)), int(status.get("failed", 0)))


# ---------------------------------------------------------------- the gate


@dataclass(frozen=True)
class Gate:
    """Where every check of one stage stands for one revision."""

    state: CheckState
    checks: tuple[CheckStatus, ...]

    @property
    def failed(self) -> CheckStatus | None:
        return next((c for c in self.checks if c.state == "Failed"), None)

    def unfinished(self) -> list[CheckStatus]:
        return [c for c in self.checks if c.state not in FINAL]

    def summary(self) -> str:
        """``smoke Running (1/3 successes), db Passed``."""
        return ", ".join(_describe(c) for c in self.checks)


def _describe(check: CheckStatus) -> str:
    if check.state == "Running" and check.failures:
        return f"{check.name} Running ({check.failures} failures in a row: {check.message})"
    if check.state == "Running":
        return f"{check.name} Running ({check.successes} successes)"
    return f"{check.name} {check.state}"


OPEN = Gate("Passed", ())


def run_key(check: Check, stage: CheckStage, revision: str, spec: BlueGreenAppSpec) -> RunKey:
    return RunKey(check.name, stage, revision, spec.retryChecks)


def evaluate(
    spec: BlueGreenAppSpec,
    stage: CheckStage,
    revision: str,
    *,
    started: bool,
    tallies: Mapping[RunKey, Tally],
    jobs: Mapping[RunKey, Obj],
    recorded: BlueGreenAppStatus | None,
) -> Gate:
    """Every check of ``stage`` for ``revision``: from the runner's tallies, the Jobs, or,
    for a run neither knows (the operator restarted, or the run ended), its final state
    as the status recorded it. ``started``: the checks are due (the preview is ready, or
    the rollback window runs), so a run with no answer yet is Running, not Pending.
    Job checks run before the switch only."""
    checks = spec.checks if stage == "preview" else probed_checks(spec)
    if not checks:
        return OPEN
    past = {_key_of(c): c for c in (recorded.checks if recorded is not None else [])}
    out = []
    for check in checks:
        key = run_key(check, stage, revision, spec)
        tally = job_tally(jobs.get(key)) if check.job is not None else tallies.get(key, Tally())
        before = past.get(key)
        if tally.state == "Pending" and before is not None:
            # A final state stands; an unfinished run starts again, its counts shown meanwhile.
            state = before.state if before.state in FINAL else "Pending"
            tally = Tally(state, before.successes, before.failures, before.message, before.value)
        if tally.state == "Pending" and started:
            tally = replace(tally, state="Running")
        out.append(
            CheckStatus(
                name=key.check,
                stage=stage,
                revision=revision,
                retry=key.retry,
                state=tally.state,
                successes=tally.successes,
                failures=tally.failures,
                message=tally.message,
                value=tally.value,
            )
        )
    return Gate(_overall([c.state for c in out]), tuple(out))


def _key_of(check: CheckStatus) -> RunKey:
    return RunKey(check.name, check.stage, check.revision, check.retry)


def _overall(states: Sequence[CheckState]) -> CheckState:
    if "Failed" in states:
        return "Failed"
    if all(s == "Passed" for s in states):
        return "Passed"
    if all(s == "Pending" for s in states):
        return "Pending"
    return "Running"


def verified(gate: Gate) -> Gate:
    """The rollback window closed without a failure: the verification runs passed."""
    checks = tuple(
        c.model_copy(update={"state": "Passed"}) if c.state not in FINAL else c for c in gate.checks
    )
    return Gate(_overall([c.state for c in checks]), checks)


def probes(
    spec: BlueGreenAppSpec,
    gate: Gate,
    namespace: str,
    service: str,
    live_service: Obj | None,
) -> tuple[Probe, ...]:
    """The HTTP and Prometheus runs still due for ``gate``, against ``service`` (a
    Prometheus query about the color it selects)."""
    by_name = {c.name: c for c in probed_checks(spec)}
    out = []
    for status in gate.unfinished():
        check = by_name.get(status.name)
        if check is not None and check.prometheus is not None:
            pods = selected(live_service)
            if pods is None:
                continue  # no Service yet: nothing says which pods the query is about
            app, color = pods
            promql = render_query(
                check.prometheus.query,
                app=app,
                namespace=namespace,
                color=color,
                revision=status.revision,
            )
            query = Query(check.prometheus, promql)
            out.append(Probe(_key_of(status), namespace, service, 0, None, None, query))
            continue
        if check is None or check.http is None:
            continue
        port = service_port(spec, check.http.port)
        if port is None:
            continue  # refused with the spec (models.BlueGreenAppSpec)
        key = _key_of(status)
        out.append(
            Probe(key, namespace, service, port, node_port_of(live_service, port), check.http)
        )
    return tuple(out)


def parse_mark(raw: str | None) -> tuple[str, int] | None:
    """``<revision>/<retry>`` as the prod Service records a switch back."""
    if not raw or "/" not in raw:
        return None
    revision, _, retry = raw.rpartition("/")
    return (revision, int(retry)) if retry.isascii() and retry.isdigit() else None


def format_mark(revision: str, retry: int) -> str:
    return f"{revision}/{retry}"
