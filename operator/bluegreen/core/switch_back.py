"""The switch back: the live revision failed its verification while the previous color
still runs, so ONE write of the prod Service moves prod back to it."""

from __future__ import annotations

from dataclasses import replace

from bluegreen.core import desired, gates, names, reasons
from bluegreen.core.clock import format_time
from bluegreen.core.context import Decision, Pass
from bluegreen.core.facts import (
    available_replicas,
    current_replicas,
    revision_label,
    selector_string,
    template_of,
)
from bluegreen.core.objects import Obj
from bluegreen.core.plans import Summary
from bluegreen.core.revision import revision_of
from bluegreen.core.writes import rescaled


def switch_back(ctx: Pass, idle_dep: Obj, verify: gates.Gate, failure: str) -> Decision:
    """The failed revision stays on its color, behind the preview Service, and is not
    promoted again until the template or ``spec.retryChecks`` changes (the mark on the prod
    Service, written in the same write, and in the status)."""
    app, active, idle, rev = ctx.app, ctx.active, ctx.idle, ctx.wanted
    spec = app.spec
    back_template = template_of(idle_dep)
    back_rev = revision_label(idle_dep) or revision_of(back_template)
    mark = (rev, spec.retryChecks)
    record = {
        names.ANNOTATION_SWITCHED_AT: format_time(ctx.now),
        names.ANNOTATION_PREVIOUS_REVISION: rev,
        names.ANNOTATION_ROLLED_BACK: gates.format_mark(*mark),
    }
    deployments = {
        active: desired.deployment(app.owner, active, ctx.live_template, rev, spec.replicas),
        idle: rescaled(app.owner, idle, idle_dep, spec.replicas),
    }
    status = Summary(
        "Degraded",
        reasons.ROLLED_BACK,
        f"revision {rev} failed after the switch ({failure}); switched prod back to {idle} "
        f"(revision {back_rev}); revision {rev} is not promoted again until the template or "
        "spec.retryChecks changes",
        active_color=idle,
        active_revision=back_rev,
        available=available_replicas(idle_dep) >= spec.replicas,
        preview_color=active,
        preview_revision=rev,
        switched_at=record[names.ANNOTATION_SWITCHED_AT],
        replicas=current_replicas(idle_dep),
        selector=selector_string(app.owner.name, idle),
        checks=verify.checks,
        rolled_back=mark,
    )
    return Decision(
        idle,
        active,
        deployments,
        record,
        back_template,
        status,
        status_unswitched=_unswitched(ctx, status, failure),
    )


def _unswitched(ctx: Pass, status: Summary, failure: str) -> Summary:
    """What status says should the switch back not be written: prod still on the failed
    revision, which is being switched away from."""
    return replace(
        status,
        reason=reasons.CHECK_FAILED,
        message=f"revision {ctx.wanted} failed after the switch ({failure}); switching prod "
        f"back to {ctx.idle}",
        active_color=ctx.active,
        active_revision=ctx.wanted,
        preview_color=None,
        preview_revision=None,
        switched_at=None,
        selector=selector_string(ctx.app.owner.name, ctx.active),
        rolled_back=None,
    )
