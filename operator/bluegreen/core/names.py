"""Names, labels and annotations: the contract between the operator and its children."""

from __future__ import annotations

from bluegreen.api.models import CheckStage, Color

MANAGER = "bluegreen-operator"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_APP = "bluegreen.dev/app"
LABEL_COLOR = "bluegreen.dev/color"
LABEL_REVISION = "bluegreen.dev/revision"
# On check Jobs (and their pods): which check of which run.
LABEL_CHECK = "bluegreen.dev/check"
LABEL_CHECK_RETRY = "bluegreen.dev/check-retry"

# On each Deployment: the user's pod template of its revision, exactly as written, so the
# revision can be restored (rollback) and re-applied without the CR holding it any more.
ANNOTATION_POD_TEMPLATE = "bluegreen.dev/pod-template"
# On the prod Service, written in the same patch as the selector switch, so that a restart
# at any moment knows when the previous color may be scaled down and which revision it held.
ANNOTATION_SWITCHED_AT = "bluegreen.dev/switched-at"
ANNOTATION_PREVIOUS_REVISION = "bluegreen.dev/previous-revision"
# On the prod Service: the user's pod template that prod serves. Should the live color's
# Deployment be deleted, it is rebuilt from this, never from a template not yet promoted.
ANNOTATION_LIVE_TEMPLATE = "bluegreen.dev/live-pod-template"
# On the prod Service, written in the same patch as an automatic switch back: the revision
# that failed a check after its switch, and the spec.retryChecks then, as
# "<revision>/<retry>". That revision is not promoted again until either changes.
ANNOTATION_ROLLED_BACK = "bluegreen.dev/rolled-back"

# On every child: a hash of what the operator last applied. Comparing it with the hash of
# what it would apply now tells, without guessing at API defaults, whether a write is due.
ANNOTATION_APPLIED = "bluegreen.dev/applied-hash"
# On every child: the annotation keys the operator set, so it can remove one it no longer
# wants without touching annotations others added.
ANNOTATION_MANAGED = "bluegreen.dev/managed-annotations"

COLORS: tuple[Color, Color] = ("blue", "green")

# The Services (and Ingresses) by role; a check's stage is the Service it probes: one type.
ServiceRole = CheckStage
SERVICE_ROLES: tuple[ServiceRole, ServiceRole] = ("prod", "preview")


def other_color(color: Color) -> Color:
    return "green" if color == "blue" else "blue"


def deployment_name(app: str, color: Color) -> str:
    return f"{app}-{color}"


def service_name(app: str, role: ServiceRole) -> str:
    """The prod Service carries the app's own name; the preview Service a suffix."""
    return app if role == "prod" else f"{app}-preview"


def ingress_name(app: str, role: ServiceRole) -> str:
    return service_name(app, role)


def route_name(app: str, role: ServiceRole) -> str:
    """The HTTPRoutes are named as the Services they send to."""
    return service_name(app, role)


def check_job_name(app: str, digest: str) -> str:
    """``<app>-check-<digest>``: at most 63 characters (the Job controller copies the name
    into a label of its pods)."""
    return f"{app[:46]}-check-{digest}"


def app_labels(app: str) -> dict[str, str]:
    """Labels on every child. The CR's own labels are never copied: GitOps tools track by them."""
    return {LABEL_NAME: app, LABEL_MANAGED_BY: MANAGER, LABEL_APP: app}


def selector(app: str, color: Color) -> dict[str, str]:
    """What a Deployment and a Service select: one app's pods of one color."""
    return {LABEL_APP: app, LABEL_COLOR: color}
