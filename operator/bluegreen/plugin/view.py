"""What kubectl-bluegreen decides and prints: pure functions of plain dicts.

The objects are exactly as the API returns them as JSON, so everything here is tested
without a cluster: reading them, the rollback target and the patches, GitOps detection,
ages, tables, the list and status views, messages, and the one-line error descriptions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import urllib3

from bluegreen.api.models import GROUP, SINGULAR, VERSION, Color
from bluegreen.core import names, reasons
from bluegreen.core.clock import parse_time
from bluegreen.core.objects import Obj

Deployments = Mapping[Color, Obj | None]

NONE = "<none>"

# What GitOps tools put on the objects they apply. A tool with self-heal reverts any change
# made beside it, so a kubectl promote or rollback of such an object does not last.
GITOPS_LABELS = (
    "app.kubernetes.io/instance",  # Argo CD (label tracking, its default)
    "kustomize.toolkit.fluxcd.io/name",  # Flux, Kustomization
    "helm.toolkit.fluxcd.io/name",  # Flux, HelmRelease
)
GITOPS_ANNOTATIONS = ("argocd.argoproj.io/tracking-id",)  # Argo CD (annotation tracking)


class PluginError(Exception):
    """A failure the user can act on, said in one line (no traceback)."""


# --- Reading the objects --------------------------------------------------------------------


def dig(obj: Mapping[str, Any] | None, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or None where any level is missing or null."""
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def deployment_revision(deployment: Obj | None) -> str | None:
    revision = dig(deployment, "metadata", "labels", names.LABEL_REVISION)
    return None if revision is None else str(revision)


def ready_of(deployment: Obj) -> str:
    """``ready/desired`` pods of a Deployment (desired defaults to 1, as in Kubernetes)."""
    desired = dig(deployment, "spec", "replicas")
    ready = dig(deployment, "status", "readyReplicas") or 0
    return f"{ready}/{1 if desired is None else desired}"


def images_of(deployment: Obj) -> str:
    containers = dig(deployment, "spec", "template", "spec", "containers") or []
    return ",".join(str(c.get("image", "?")) for c in containers) or NONE


def is_observed(app: Obj) -> bool:
    """Whether the status describes the current spec (and not an older one, or none)."""
    observed = dig(app, "status", "observedGeneration")
    return observed is not None and observed == dig(app, "metadata", "generation")


def color_role(app: Obj, color: Color, deployment: Obj | None) -> str:
    """What a color is for: active, preview, previous (a rollback target) or idle."""
    status = app.get("status") or {}
    if color == status.get("activeColor"):
        return "active"
    if color == status.get("previewColor"):
        return "preview"
    revision = deployment_revision(deployment)
    if revision is not None and revision != status.get("activeRevision"):
        return "previous"
    return "idle"


# --- Decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackTarget:
    color: Color
    revision: str
    template: Obj


def rollback_target(app: Obj, deployments: Deployments) -> RollbackTarget:
    """The revision that last served prod: ``status.previousRevision``, as the operator
    records it, taken from the color beside the active one, which still holds it.

    Never the other color's revision as such: after a preview was abandoned, that color
    holds a revision that never served, and "rollback" must not mean "promote that".
    The Deployment keeps the user's template of its revision in an annotation, exactly as
    written, which is what a rollback puts back into the spec.
    """
    name = dig(app, "metadata", "name")
    status = app.get("status") or {}

    def unknown(reason: str) -> PluginError:
        return PluginError(f'no previous revision is known for {SINGULAR} "{name}": {reason}')

    active = status.get("activeColor")
    if active not in names.COLORS:
        raise unknown("no color is active yet")
    if status.get("previewColor"):
        raise unknown(
            f"{status['previewColor']} holds a waiting preview and prod still serves "
            f"revision {status.get('activeRevision', '?')}: there is nothing to roll back"
        )
    previous = status.get("previousRevision")
    if not previous:
        raise unknown(
            "no earlier revision served prod since the last switch, or its color has been "
            "given another revision since"
        )
    other = names.other_color(active)
    other_name = names.deployment_name(name, other)
    deployment = deployments.get(other)
    if deployment is None or deployment_revision(deployment) != previous:
        raise unknown(f"Deployment {other_name} no longer holds revision {previous}")
    raw = dig(deployment, "metadata", "annotations", names.ANNOTATION_POD_TEMPLATE)
    where = f"annotation {names.ANNOTATION_POD_TEMPLATE} of Deployment {other_name}"
    if raw is None:
        raise unknown(f"no {where}")
    return RollbackTarget(other, previous, parse_template(raw, where))


def parse_template(raw: str, where: str) -> Obj:
    try:
        template = json.loads(raw)
    except json.JSONDecodeError as error:
        raise PluginError(f"the {where} is not JSON: {error}") from None
    if not isinstance(template, dict):
        raise PluginError(f"the {where} is not a pod template")
    return template


def promote_patch() -> Obj:
    """A JSON merge patch: it sets one field and leaves the rest of the spec alone."""
    return {"spec": {"promote": True}}


def rollback_patch(app: Obj, template: Obj, *, promote: bool) -> list[Obj]:
    """A JSON patch replacing the whole template.

    Not a merge patch: that would merge the old template into the current one, keeping
    every key the old one lacks. The ``test`` makes the API refuse the patch if the spec
    changed since the rollback was decided (a status write does not change the generation).
    """
    operations: list[Obj] = [
        {"op": "test", "path": "/metadata/generation", "value": dig(app, "metadata", "generation")},
        {"op": "replace", "path": "/spec/template", "value": template},
    ]
    if promote:
        # "add", not "replace": it also works when the stored object has no promote field.
        operations.append({"op": "add", "path": "/spec/promote", "value": True})
    return operations


def retry_patch(app: Obj) -> list[Obj]:
    """A JSON patch raising ``spec.retryChecks`` by one: the checks of the current revision
    run again. The ``test`` refuses it if the spec changed since it was decided, so two
    retries at once raise it once, not twice over a value neither saw."""
    return [
        {"op": "test", "path": "/metadata/generation", "value": dig(app, "metadata", "generation")},
        {"op": "add", "path": "/spec/retryChecks", "value": retry_count(app) + 1},
    ]


def retry_count(app: Obj) -> int:
    return int(dig(app, "spec", "retryChecks") or 0)


def retry_refusal(app: Obj) -> str | None:
    """Why a retry of the checks would do nothing (None: it would run them again)."""
    if not dig(app, "spec", "checks"):
        return f'{SINGULAR} "{dig(app, "metadata", "name")}" declares no checks to run again'
    return None


def retry_message(app: Obj) -> str:
    return (
        f'{SINGULAR} "{dig(app, "metadata", "name")}": spec.retryChecks is now '
        f"{retry_count(app)}, its checks run again for the current revision"
    )


def gitops_marker(app: Obj) -> str | None:
    """The label or annotation that shows a GitOps tool manages this object, if any."""
    labels = dig(app, "metadata", "labels") or {}
    annotations = dig(app, "metadata", "annotations") or {}
    for key in GITOPS_LABELS:
        if key in labels:
            return f"label {key}={labels[key]}"
    for key in GITOPS_ANNOTATIONS:
        if key in annotations:
            return f"annotation {key}"
    return None


# What a GitOps tool does to each command's change, as seen with Argo CD and self-heal, and
# what to commit instead.
GITOPS_EFFECT = {
    "promote": (
        "prod switches now and stays switched, but self-heal puts Git's spec.promote back "
        "within seconds (without self-heal the app shows OutOfSync)"
    ),
    "rollback": (
        "self-heal puts Git's template back within seconds, which rolls the newer revision "
        "out again (without self-heal the app shows OutOfSync)"
    ),
    "retry": (
        "the checks run again now, and once more when self-heal puts Git's "
        "spec.retryChecks back (without self-heal the app shows OutOfSync)"
    ),
}
GITOPS_COMMIT = {
    "promote": "commit promote: true",
    "rollback": "commit a revert of the template change",
    "retry": "commit a higher spec.retryChecks",
}


def gitops_refusal(app: Obj, command: str) -> str | None:
    """Why ``command`` refuses to change an app that a GitOps tool manages (None: it is not).

    Git is the truth for such an app: a change made beside it does not last (or, for a
    promote, lasts in the cluster while Git says otherwise), so it takes --force.
    """
    marker = gitops_marker(app)
    if marker is None:
        return None
    return (
        f'{SINGULAR} "{dig(app, "metadata", "name")}" is managed by GitOps ({marker}): '
        f"{GITOPS_COMMIT[command]} to Git instead, or repeat with --force: "
        f"{GITOPS_EFFECT[command]}"
    )


def gitops_warning(app: Obj, command: str) -> str | None:
    """What happens to a forced ``command`` on an app that a GitOps tool manages."""
    marker = gitops_marker(app)
    if marker is None:
        return None
    return (
        f'warning: {SINGULAR} "{dig(app, "metadata", "name")}" is managed by GitOps '
        f"({marker}): {GITOPS_EFFECT[command]}; {GITOPS_COMMIT[command]} to Git to match"
    )


# --- Rendering -------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """An age the way kubectl prints it: 45s, 3m20s, 2h, 5d."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age_of(obj: Obj, now: datetime) -> str:
    then = parse_time(dig(obj, "metadata", "creationTimestamp"))
    if then is None:
        return NONE
    return human_duration((now - then).total_seconds())


def render_table(rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded to their widest cell, three spaces apart, as kubectl prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = (
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )
    return "\n".join(indent + line.rstrip() for line in lines)


def list_row(app: Obj, now: datetime, *, with_namespace: bool) -> list[str]:
    status = app.get("status") or {}
    row = [
        dig(app, "metadata", "name"),
        status.get("activeColor") or NONE,
        status.get("previewColor") or NONE,
        status.get("phase") or NONE,
        "true" if dig(app, "spec", "promote") else "false",
        age_of(app, now),
    ]
    return [dig(app, "metadata", "namespace"), *row] if with_namespace else row


def render_list(apps: Iterable[Obj], now: datetime, *, namespace: str | None) -> str:
    """The ``list`` table; ``namespace`` None means all namespaces (a NAMESPACE column)."""
    with_namespace = namespace is None
    ordered = sorted(
        apps, key=lambda a: (dig(a, "metadata", "namespace"), dig(a, "metadata", "name"))
    )
    if not ordered:
        where = "any namespace" if with_namespace else f'namespace "{namespace}"'
        return f"No BlueGreenApps found in {where}."
    header = ["NAME", "ACTIVE", "PREVIEW", "PHASE", "PROMOTE", "AGE"]
    if with_namespace:
        header = ["NAMESPACE", *header]
    return render_table(
        [header] + [list_row(a, now, with_namespace=with_namespace) for a in ordered]
    )


def colors_rows(app: Obj, deployments: Deployments) -> list[list[str]]:
    rows = [["COLOR", "ROLE", "REVISION", "READY", "IMAGE"]]
    for color in names.COLORS:
        deployment = deployments.get(color)
        if deployment is None:
            rows.append([color, "-", NONE, "-", "(no Deployment)"])
            continue
        role = color_role(app, color, deployment)
        rows.append(
            [
                color,
                role,
                deployment_revision(deployment) or NONE,
                ready_of(deployment),
                images_of(deployment),
            ]
        )
    return rows


def conditions_rows(conditions: Sequence[Obj]) -> list[list[str]]:
    rows = [["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]]
    for condition in conditions:
        rows.append(
            [
                str(condition.get(key) or "")
                for key in ("type", "status", "reason", "lastTransitionTime", "message")
            ]
        )
    return rows


def checks_rows(checks: Sequence[Obj]) -> list[list[str]]:
    """One row per check run: where it stands, its streaks and its last answer."""
    rows = [["CHECK", "STAGE", "REVISION", "STATE", "OK", "FAILED", "LAST ANSWER"]]
    for check in checks:
        rows.append(
            [
                str(check.get(key) if check.get(key) is not None else "")
                for key in ("name", "stage", "revision", "state", "successes", "failures")
            ]
            + [str(check.get("message") or "")]
        )
    return rows


def observed_line(app: Obj) -> str:
    generation = dig(app, "metadata", "generation")
    observed = dig(app, "status", "observedGeneration")
    if is_observed(app):
        return f"generation {generation} (current)"
    if observed is None:
        return f"none yet (generation {generation} waits for the operator)"
    return f"generation {observed} of {generation} (the operator has not caught up yet)"


def next_step(app: Obj) -> str | None:
    """A hint when the app waits for the user rather than for the operator."""
    name = dig(app, "metadata", "name")
    if dig(app, "status", "phase") == "Paused" and not dig(app, "spec", "promote"):
        return f"kubectl bluegreen promote {name}   (or set promote: true in Git)"
    failed = {c.get("reason") for c in dig(app, "status", "conditions") or []} & {
        reasons.CHECK_FAILED,
        reasons.ROLLED_BACK,
    }
    if dig(app, "status", "phase") == "Degraded" and failed:
        return (
            f"fix the template, or kubectl bluegreen retry {name} "
            f"(spec.retryChecks: {retry_count(app) + 1}) to run the checks again"
        )
    return None


def render_status(app: Obj, deployments: Deployments) -> str:
    """The ``status`` view. Time-independent, so a watch can print it only when it changes."""
    status = app.get("status") or {}
    fields = [
        ("Name:", dig(app, "metadata", "name")),
        ("Namespace:", dig(app, "metadata", "namespace")),
        ("Phase:", status.get("phase") or NONE),
        ("Message:", status.get("message") or NONE),
        ("Promote:", "true" if dig(app, "spec", "promote") else "false"),
        ("Observed:", observed_line(app)),
        ("Active:", _color_revision(status.get("activeColor"), status.get("activeRevision"))),
        ("Preview:", _color_revision(status.get("previewColor"), status.get("previewRevision"))),
    ]
    hint = next_step(app)
    if hint:
        fields.append(("Next:", hint))
    lines = [f"{label:<11} {value}" for label, value in fields]
    lines += ["Colors:", render_table(colors_rows(app, deployments), indent="  ")]
    checks = status.get("checks") or []
    if checks:
        lines += ["Checks:", render_table(checks_rows(checks), indent="  ")]
    conditions = status.get("conditions") or []
    lines.append("Conditions:")
    lines.append(
        render_table(conditions_rows(conditions), indent="  ") if conditions else f"  {NONE}"
    )
    return "\n".join(lines)


def _color_revision(color: str | None, revision: str | None) -> str:
    if not color:
        return NONE
    return f"{color} (revision {revision or '?'})"


def promote_message(app: Obj) -> str:
    """What happens after a promote, told from the status read with the patch's answer."""
    name = dig(app, "metadata", "name")
    preview = dig(app, "status", "previewColor")
    if preview:
        revision = dig(app, "status", "previewRevision") or "?"
        return (
            f'{SINGULAR} "{name}" promoted: prod traffic moves to {preview} '
            f"(revision {revision}) as soon as it is fully ready"
        )
    return (
        f'{SINGULAR} "{name}" promoted: no preview is waiting, so every new revision '
        "goes live as soon as it is fully ready"
    )


def moves_prod(app: Obj, promote_flag: bool) -> bool:
    """Whether prod follows a rollback by itself: with ``--promote``, or when the app
    promotes every ready revision already (``spec.promote: true``)."""
    return promote_flag or bool(dig(app, "spec", "promote"))


def rollback_message(app_name: str, target: RollbackTarget, *, promote: bool) -> str:
    then = (
        "prod moves to it as soon as it is ready"
        if promote
        else "it becomes the preview; promote it to move prod back"
    )
    return (
        f'{SINGULAR} "{app_name}" rolled back to revision {target.revision} '
        f"(still on {target.color}): {then}"
    )


# --- Errors ----------------------------------------------------------------------------------


def describe_api_error(
    status: int | None, reason: str | None, body: str | None, *, what: str, namespace: str | None
) -> str:
    """One line for an error answer of the API server."""
    details: Obj = {}
    try:
        parsed = json.loads(body or "")
        if isinstance(parsed, dict):
            details = parsed
    except json.JSONDecodeError:
        pass
    message = details.get("message") or (body or "").strip() or reason or ""
    if status == 404:
        name = dig(details, "details", "name")
        if name:
            return f'{SINGULAR} "{name}" not found in namespace "{namespace}"'
        return (
            f"the BlueGreenApp API ({GROUP}/{VERSION}) is not installed in this cluster: "
            "apply the CRD first"
        )
    if status == 401:
        return "unauthorized: the API server refused the credentials of your kubeconfig"
    if status == 403:
        return f"forbidden: {message}"
    return f"could not {what}: the API server answered {status} {reason}: {message}"


def describe_connection_error(
    error: urllib3.exceptions.HTTPError, host: str, timeout: float
) -> str:
    """One line for a cluster that cannot be reached."""
    cause: BaseException = error
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        cause = error.reason
    # NewConnectionError (refused, no route, no such host) derives from ConnectTimeoutError.
    timed_out = isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
        cause, urllib3.exceptions.NewConnectionError
    )
    detail = f"no answer within {timeout:g}s" if timed_out else without_urllib3_prefix(str(cause))
    return f"cannot reach the Kubernetes API at {host}: {detail}"


def without_urllib3_prefix(text: str) -> str:
    """'HTTPSConnection(...): Failed to establish a new connection: [Errno 111] Connection
    refused' -> 'Connection refused': the host is said once already."""
    text = re.sub(r"^\w+\(host=[^)]*\): ", "", text)
    text = text.removeprefix("Failed to establish a new connection: ")
    return re.sub(r"^\[Errno -?\d+\] ", "", text)
