"""The planner's plain data: what a pass plans from (:class:`App`, :class:`Observed`) and
what it plans (:class:`Plan`: the writes, the status they lead to, the checks to run)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bluegreen.api.models import BlueGreenAppSpec, BlueGreenAppStatus, CheckStatus, Color, Phase
from bluegreen.core import gates, names
from bluegreen.core.desired import Owner
from bluegreen.core.objects import Obj

Kind = Literal["Deployment", "Service", "Ingress", "HTTPRoute", "Job"]
Verb = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class App:
    """The BlueGreenApp as read: who owns the children, and what the user asked for."""

    owner: Owner
    generation: int
    spec: BlueGreenAppSpec
    # The status last written (None when absent or unreadable): the fallback record of
    # what is live, should the prod Service be lost.
    recorded: BlueGreenAppStatus | None = None


@dataclass(frozen=True)
class Observed:
    """The children that exist (by color or role), whoever owns them, the endpoints of the
    preview and prod Services, and the app's ReplicaSets (which name each revision's pods)."""

    deployments: Mapping[Color, Obj] = field(default_factory=dict)
    services: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)
    ingresses: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)
    preview_endpoints: Sequence[Obj] = ()
    replicasets: Sequence[Obj] = ()
    prod_endpoints: Sequence[Obj] = ()
    # The check runner's tallies of the HTTP check runs, and the app's check Jobs.
    check_tallies: Mapping[gates.RunKey, gates.Tally] = field(default_factory=dict)
    jobs: Sequence[Obj] = ()
    routes: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)  # HTTPRoutes
    gateway_api: bool = True  # whether the cluster serves HTTPRoutes (their CRD is there)
    # Parent Gateways (namespace, name) the routes name that are known not to exist.
    missing_parents: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Action:
    verb: Verb
    kind: Kind
    name: str
    body: Obj | None
    reason: str  # the Event's reason: Created, Deploying, Scaled, Switched, Updated, Deleted
    why: str  # the Event's message and the log line


@dataclass(frozen=True)
class Summary:
    """What ``status`` will say (:mod:`bluegreen.core.status` turns it into the status model).

    ``available`` is None when it is not known (the pass stopped before looking)."""

    phase: Phase
    reason: str
    message: str
    active_color: Color | None
    active_revision: str | None
    available: bool | None
    preview_color: Color | None = None
    preview_revision: str | None = None
    previous_revision: str | None = None
    switched_at: str | None = None
    # The scale subresource: the live color's pods and their selector.
    replicas: int | None = None
    selector: str | None = None
    # Each check of the revision being released or verified.
    checks: tuple[CheckStatus, ...] = ()
    # A revision switched back after a failed check, with the retryChecks then.
    rolled_back: tuple[str, int] | None = None


@dataclass(frozen=True)
class Switch:
    """The move of prod traffic as one plan sees it, in one value: whether it is due, whether
    this plan writes it, which write it is, and what status says should it not be written."""

    # The new revision is rolled out at the size the switch wants (the clock of
    # bluegreen_switch_after_ready_seconds starts at the first plan that finds it so).
    due: bool = False
    # Planned: what status says should the switch not be written (refused, or blocked by a
    # foreign object): prod then still selects the old color. None: no switch planned.
    unswitched: Summary | None = None
    # The prod Service's write; None when not planned, or when it is blocked.
    action: Action | None = None
    # A Warning Event to post once the switch is written.
    warning: str | None = None

    @property
    def planned(self) -> bool:
        return self.unswitched is not None

    def is_written(self, done: Sequence[Action]) -> bool:
        return self.action is not None and self.action in done


NO_SWITCH = Switch()


@dataclass(frozen=True)
class Plan:
    """The writes, what status says once they are all done, and the switch among them."""

    actions: tuple[Action, ...]
    status: Summary
    requeue_after: float | None = None
    switch: Switch = NO_SWITCH
    # Children of this app's names that belong to someone else, as "Kind name".
    conflicts: tuple[str, ...] = ()
    # The HTTP check runs due now (the check runner probes them off the reconcile path).
    probes: tuple[gates.Probe, ...] = ()
