"""One pass's context: everything a decision reads, observed once and never changed.

Argo Rollouts keeps a ``rolloutContext`` too, but its steps modify it as they go; this one
is frozen, so each step is a pure function of it and returns its :class:`Decision`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bluegreen.api.models import Color
from bluegreen.core import gates, names
from bluegreen.core.objects import Obj
from bluegreen.core.plans import App, Observed, Summary


@dataclass(frozen=True)
class Children:
    """The children this app owns, foreign ones left out."""

    deployments: Mapping[Color, Obj]
    services: Mapping[names.ServiceRole, Obj]
    ingresses: Mapping[names.ServiceRole, Obj]
    routes: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)  # HTTPRoutes


@dataclass(frozen=True)
class Live:
    """What serves prod: its color, its revision, and the user's template of that revision
    (both None before the first rollout, when nothing has served yet)."""

    color: Color
    revision: str | None = None
    template: Obj | None = None


@dataclass(frozen=True)
class Pass:
    """The inputs of one plan, and what was found from them before deciding."""

    app: App
    ours: Children  # the children this app owns
    observed: Observed  # everything observed, foreign children and check results included
    now: datetime
    wanted: str  # the revision of the spec's template
    live: Live
    # When prod last switched, from which revision, and a revision switched back (the
    # prod Service's annotations, or the status should it have lost them).
    record: Mapping[str, str]
    # The status last written, as a summary (None when absent or unreadable).
    recorded: Summary | None = None

    @property
    def active(self) -> Color:
        return self.live.color

    @property
    def idle(self) -> Color:
        return names.other_color(self.live.color)

    @property
    def active_dep(self) -> Obj | None:
        return self.ours.deployments.get(self.active)

    @property
    def idle_dep(self) -> Obj | None:
        return self.ours.deployments.get(self.idle)

    @property
    def active_revision(self) -> str:
        """The revision prod serves; the wanted one before the first rollout."""
        return self.live.revision or self.wanted

    @property
    def live_template(self) -> Obj:
        """What the live color runs: rebuilt from what prod served, so a preview never
        reaches prod without a promotion; only the very first rollout starts from the spec."""
        return self.live.template if self.live.template is not None else self.app.spec.template


@dataclass(frozen=True)
class Decision:
    """Which color serves prod, which (if any) holds a waiting preview, what each color runs."""

    prod_color: Color
    preview_color: Color | None
    deployments: dict[Color, Obj]
    switch_record: Mapping[str, str]
    # What the prod Service records as served once this plan is carried out (None: unknown).
    live_template: Obj | None
    status: Summary
    requeue_after: float | None = None
    # When this decision switches prod: what status says should that write not be done.
    status_unswitched: Summary | None = None
    switch_due: bool = False  # see plans.Switch.due
    probes: tuple[gates.Probe, ...] = ()
    jobs: tuple[Obj, ...] = ()  # check Jobs to create when missing

    @property
    def switches(self) -> bool:
        return self.status_unswitched is not None
