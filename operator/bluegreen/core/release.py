"""A new revision's release: onto the idle color (updated in place), behind the preview
Service, its checks run once the preview serves it with every pod ready; with ``promote``,
ONE write of the prod Service switches to it once it is fully rolled out at ``replicas``,
its endpoints are ready and its checks passed.

The step reads as its four parts: the facts of the preview, the gate, the switch, and
what status says while it waits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bluegreen.api.models import Color
from bluegreen.core import checks, desired, gates, names, reasons
from bluegreen.core.clock import format_time
from bluegreen.core.context import Decision, Pass
from bluegreen.core.facts import (
    available_replicas,
    current_replicas,
    has_failed_progress,
    needs_write,
    pod_name_prefixes,
    ready_endpoints_of,
    revision_label,
    selector_string,
)
from bluegreen.core.live import Mark, blocking_mark
from bluegreen.core.objects import Obj
from bluegreen.core.plans import Summary
from bluegreen.core.rollout import (
    is_rolled_out,
    is_rolled_out_by_endpoints,
    is_rolled_out_by_replicasets,
)


@dataclass(frozen=True)
class Preview:
    """The facts of the wanted revision on the idle color, observed once."""

    target: int  # its size: ``replicas`` with promote, else the preview's size
    deployments: dict[Color, Obj]  # what each color runs meanwhile
    rolled_out: bool
    ready_endpoints: int  # of its pods, as the preview Service lists them
    mark: Mark | None  # set when this revision was switched back and is not retried

    @property
    def is_ready(self) -> bool:
        return self.rolled_out and self.ready_endpoints >= self.target

    @property
    def is_checked(self) -> bool:
        """Its checks run: it is ready, and not blocked by an earlier switch back."""
        return self.is_ready and self.mark is None


def release(ctx: Pass) -> Decision:
    """A new revision: onto the idle color, behind the preview Service; switch when allowed."""
    preview = observe_preview(ctx)
    gate = checks.gate(ctx, "preview", ctx.wanted, started=preview.is_checked)
    waiting = _waiting(ctx, gate, preview.mark)
    if may_switch(ctx, preview, gate):
        return _switch(ctx, preview, gate, waiting)
    status, due = _summary(ctx, preview, gate, waiting)
    return Decision(
        ctx.active,
        ctx.idle,
        preview.deployments,
        ctx.record,
        None,
        status,
        switch_due=due,
        probes=checks.probes(ctx, "preview", gate) if preview.is_checked else (),
        jobs=checks.check_jobs(ctx, gate) if preview.is_checked else (),
    )


def observe_preview(ctx: Pass) -> Preview:
    app, spec, idle, wanted = ctx.app, ctx.app.spec, ctx.idle, ctx.wanted
    target = spec.replicas if spec.promote else spec.preview_size()
    preview = desired.deployment(app.owner, idle, spec.template, wanted, target)
    live = desired.deployment(
        app.owner, ctx.active, ctx.live_template, ctx.active_revision, spec.replicas
    )
    idle_dep, observed = ctx.idle_dep, ctx.observed
    rolled_out = (
        idle_dep is not None
        and revision_label(idle_dep) == wanted
        and not needs_write(preview, idle_dep)
        and (
            is_rolled_out(idle_dep, target)
            or is_rolled_out_by_replicasets(idle_dep, observed.replicasets, wanted, target)
            or is_rolled_out_by_endpoints(
                idle_dep, observed.replicasets, observed.preview_endpoints, wanted, target
            )
        )
    )
    idle_name = names.deployment_name(app.owner.name, idle)
    new_pods = pod_name_prefixes(observed.replicasets, idle_name, wanted)
    ready_eps = ready_endpoints_of(observed.preview_endpoints, new_pods)
    # The checks start once the preview serves the new revision with every pod ready; a
    # revision switched back after a failed check waits for a new template or a retry.
    deployments = {ctx.active: live, idle: preview}
    return Preview(target, deployments, rolled_out, ready_eps, blocking_mark(ctx))


def may_switch(ctx: Pass, preview: Preview, gate: gates.Gate) -> bool:
    """Promoted, ready, checked and not blocked. A missing prod Service is first recreated
    where prod was; the switch is a later write of its own, so status can tell which of the
    two happened."""
    return (
        ctx.app.spec.promote
        and preview.is_ready
        and gate.state == "Passed"
        and preview.mark is None
        and "prod" in ctx.ours.services
    )


def _waiting(ctx: Pass, gate: gates.Gate, mark: Mark | None) -> Summary:
    """What status says while prod stays on the live color."""
    active, active_dep = ctx.active, ctx.active_dep
    return Summary(
        phase="Progressing",
        reason=reasons.ROLLING_OUT,
        message="",
        active_color=active,
        active_revision=ctx.active_revision,
        available=available_replicas(active_dep) >= ctx.app.spec.replicas,
        preview_color=ctx.idle,
        preview_revision=ctx.wanted,
        switched_at=ctx.record.get(names.ANNOTATION_SWITCHED_AT),
        replicas=current_replicas(active_dep),
        selector=selector_string(ctx.app.owner.name, active),
        checks=gate.checks,
        rolled_back=mark,
    )


def _switch(ctx: Pass, preview: Preview, gate: gates.Gate, waiting: Summary) -> Decision:
    spec, active, idle = ctx.app.spec, ctx.active, ctx.idle
    active_rev, wanted = ctx.active_revision, ctx.wanted
    record = {
        names.ANNOTATION_SWITCHED_AT: format_time(ctx.now),
        names.ANNOTATION_PREVIOUS_REVISION: active_rev,
    }
    status = Summary(
        "Healthy",
        reasons.SWITCHED,
        f"switched prod from {active} (revision {active_rev}) to {idle} (revision {wanted}); "
        f"{active} keeps its pods for {spec.scaleDownDelaySeconds}s for an instant rollback",
        active_color=idle,
        active_revision=wanted,
        available=True,
        previous_revision=active_rev,
        switched_at=record[names.ANNOTATION_SWITCHED_AT],
        replicas=current_replicas(ctx.idle_dep),
        selector=selector_string(ctx.app.owner.name, idle),
        checks=gate.checks,
    )
    unswitched = replace(
        waiting,
        reason=reasons.SWITCHING,
        message=f"revision {wanted} is ready on {idle}; switching prod to it",
    )
    return Decision(
        idle,
        None,
        preview.deployments,
        record,
        spec.template,
        status,
        float(spec.scaleDownDelaySeconds),
        status_unswitched=unswitched,
        switch_due=True,
    )


def _summary(
    ctx: Pass, preview: Preview, gate: gates.Gate, waiting: Summary
) -> tuple[Summary, bool]:
    """Why prod does not switch yet: stuck (the first three), or on its way; and whether
    the switch is due (rolled out, waiting for the endpoints)."""
    idle, wanted, idle_dep = ctx.idle, ctx.wanted, ctx.idle_dep
    failure = has_failed_progress(idle_dep)
    if failure and revision_label(idle_dep) == wanted:
        return replace(
            waiting,
            phase="Degraded",
            reason=reasons.ROLLOUT_FAILED,
            message=f"preview {idle}: {failure}",
        ), False
    if preview.mark is not None:
        return _rolled_back_status(ctx.recorded, waiting, wanted), False
    if gate.failed is not None:
        return replace(
            waiting,
            phase="Degraded",
            reason=reasons.CHECK_FAILED,
            message=f"check {gate.failed.name} failed on the preview of revision {wanted}: "
            f"{gate.failed.message}; prod stays on {ctx.active} (revision "
            f"{ctx.active_revision}); change the template or spec.retryChecks to run the "
            "checks again",
        ), False
    return _on_its_way(ctx, preview, gate, waiting)


def _on_its_way(
    ctx: Pass, preview: Preview, gate: gates.Gate, waiting: Summary
) -> tuple[Summary, bool]:
    """Rolling out, waiting for its endpoints, checking, or waiting for promotion."""
    idle, wanted, target, ready_eps = ctx.idle, ctx.wanted, preview.target, preview.ready_endpoints
    if not preview.rolled_out:
        have = available_replicas(ctx.idle_dep) if revision_label(ctx.idle_dep) == wanted else 0
        return replace(
            waiting,
            message=f"rolling out revision {wanted} on {idle}: {have}/{target} pods available",
        ), False
    if gate.state != "Passed" and not preview.is_ready:
        return replace(
            waiting,
            reason=reasons.WAITING_FOR_ENDPOINTS,
            message=f"revision {wanted} is rolled out on {idle}; its checks start once the "
            f"preview Service lists its pods ready: {ready_eps}/{target}",
        ), True
    if gate.state != "Passed":
        return replace(
            waiting,
            reason=reasons.CHECKING,
            message=f"revision {wanted} is ready on {idle}; checking it: {gate.summary()}",
        ), False
    if not ctx.app.spec.promote:
        preview_service = names.service_name(ctx.app.owner.name, "preview")
        passed = "; its checks passed" if ctx.app.spec.checks else ""
        return replace(
            waiting,
            phase="Paused",
            reason=reasons.WAITING_FOR_PROMOTION,
            message=f"revision {wanted} is ready on {idle} behind Service {preview_service}"
            f"{passed}; set spec.promote to true to switch prod to it",
        ), False
    return replace(
        waiting,
        reason=reasons.WAITING_FOR_ENDPOINTS,
        message=f"revision {wanted} is rolled out on {idle}; waiting for the preview Service "
        f"to list its pods ready: {ready_eps}/{target}",
    ), True


def _rolled_back_status(recorded: Summary | None, waiting: Summary, want: str) -> Summary:
    """Degraded while the spec still asks for a revision that was switched back: the
    message of the switch back (what failed, and how) stays, so does the failed check."""
    checks = recorded.checks if recorded is not None else ()
    after_switch = tuple(c for c in checks if c.stage == "prod" and c.revision == want)
    message = (
        f"revision {want} failed after its switch and prod was switched back to "
        f"{waiting.active_color} (revision {waiting.active_revision}); it is not promoted "
        "again until the template or spec.retryChecks changes"
    )
    if recorded is not None and recorded.rolled_back and recorded.rolled_back[0] == want:
        message = recorded.message or message
    return replace(
        waiting,
        phase="Degraded",
        reason=reasons.ROLLED_BACK,
        message=message,
        checks=waiting.checks + after_switch,
    )
