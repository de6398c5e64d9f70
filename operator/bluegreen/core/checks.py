"""The checks as the planner sees them: the gate of a revision at a stage, what the check
runner is to probe, which check Jobs are due, and what status shows of them.

The states themselves are :mod:`bluegreen.core.gates`; this module feeds it one pass's
observations and turns its answer into runs to start.
"""

from __future__ import annotations

from bluegreen.api.models import CheckStage, CheckStatus
from bluegreen.core import desired, gates, names
from bluegreen.core.context import Pass
from bluegreen.core.facts import is_owned_by, unavailable_because
from bluegreen.core.objects import Obj


def gate(ctx: Pass, stage: CheckStage, revision: str, *, started: bool) -> gates.Gate:
    """Where every check of ``stage`` stands for ``revision``; ``started``: they are due."""
    app = ctx.app
    return gates.evaluate(
        app.spec,
        stage,
        revision,
        started=started,
        tallies=ctx.observed.check_tallies,
        jobs=_jobs_by_run(ctx),
        recorded=app.recorded,
    )


def _jobs_by_run(ctx: Pass) -> dict[gates.RunKey, Obj]:
    """The app's check Jobs, by the run they belong to (from their labels)."""
    out = {}
    for job in ctx.observed.jobs:
        labels = job.get("metadata", {}).get("labels") or {}
        check, rev = labels.get(names.LABEL_CHECK), labels.get(names.LABEL_REVISION)
        retry = labels.get(names.LABEL_CHECK_RETRY, "")
        owned = is_owned_by(job, ctx.app.owner)
        if owned and check and rev and retry.isascii() and retry.isdigit():
            out[gates.RunKey(check, "preview", rev, int(retry))] = job
    return out


def probes(ctx: Pass, stage: CheckStage, the_gate: gates.Gate) -> tuple[gates.Probe, ...]:
    """The HTTP runs of ``the_gate`` still due, against the Service of ``stage``."""
    owner = ctx.app.owner
    service = names.service_name(owner.name, stage)
    live = ctx.ours.services.get(stage)
    return gates.probes(ctx.app.spec, the_gate, owner.namespace, service, live)


def check_jobs(ctx: Pass, the_gate: gates.Gate) -> tuple[Obj, ...]:
    """The Jobs of the Job checks still running on the preview."""
    app = ctx.app
    by_name = {c.name: c for c in gates.job_checks(app.spec)}
    port = app.spec.service.ports[0].port
    out = []
    for check in the_gate.unfinished():
        spec = by_name.get(check.name)
        if spec is None or spec.job is None:
            continue
        name = gates.job_name(app.owner.name, check.name, check.revision, check.retry)
        run = (name, check.revision, check.retry)
        out.append(desired.check_job(app.owner, check.name, spec.job, run, port))
    return tuple(out)


def steady_checks(ctx: Pass, verify: gates.Gate, verifying: bool) -> tuple[CheckStatus, ...]:
    """What the status shows of the live revision's checks: how it passed them on the
    preview, then its verification against prod (running, or passed once the window closed
    without a failure)."""
    rev = ctx.wanted
    before = gate(ctx, "preview", rev, started=False)
    shown = [c for c in before.checks if c.state in gates.FINAL]
    recorded = ctx.recorded.checks if ctx.recorded is not None else ()
    if verifying:
        shown += verify.checks
    elif any(c.stage == "prod" and c.revision == rev for c in recorded):
        shown += gates.verified(verify).checks
    return tuple(shown)


def verification_failure(verify: gates.Gate, active_dep: Obj | None) -> str | None:
    """Why the new live revision fails its verification: a failed check, or its Deployment
    no longer available (pods crashing, say)."""
    failed = verify.failed
    if failed is not None:
        return f"check {failed.name} failed against prod: {failed.message}"
    why = unavailable_because(active_dep)
    if why is not None:
        return f"its Deployment is not available: {why}"
    return None
