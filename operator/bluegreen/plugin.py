"""kubectl-bluegreen: see and steer BlueGreenApps from the command line.

    kubectl bluegreen list [-A]
    kubectl bluegreen status NAME [--watch]
    kubectl bluegreen promote NAME
    kubectl bluegreen rollback NAME [--promote]

Everything that decides or renders is a pure function of plain dicts (objects exactly as the
API returns them as JSON), so it is tested without a cluster. Only :class:`Kube` talks to the
API, and it turns every failure into a one-line :class:`PluginError`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import urllib3
from kubernetes import client, config, watch

from bluegreen import names
from bluegreen.models import GROUP, PLURAL, SINGULAR, VERSION, Color

Obj = dict[str, Any]
Deployments = Mapping[Color, Obj | None]

NONE = "<none>"
DEFAULT_REQUEST_TIMEOUT = 10.0
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
WATCH_SECONDS = 300

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


def revision_of(deployment: Obj | None) -> str | None:
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
    revision = revision_of(deployment)
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
    """The previous revision: the one the color beside the active one still remembers.

    That color is the previous one only while no preview is waiting on it (a preview
    replaces what it held). Its Deployment keeps the user's template of its revision in an
    annotation, exactly as written, which is what a rollback puts back into the spec.
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
    other = names.other_color(active)
    other_name = names.deployment_name(name, other)
    deployment = deployments.get(other)
    revision = revision_of(deployment)
    if deployment is None or revision is None:
        raise unknown(f"Deployment {other_name} holds no revision")
    if revision == status.get("activeRevision"):
        raise unknown(f"{other} holds the active revision {revision} too")
    raw = dig(deployment, "metadata", "annotations", names.ANNOTATION_POD_TEMPLATE)
    where = f"annotation {names.ANNOTATION_POD_TEMPLATE} of Deployment {other_name}"
    if raw is None:
        raise unknown(f"no {where}")
    return RollbackTarget(other, revision, parse_template(raw, where))


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


def gitops_warning(app: Obj) -> str | None:
    marker = gitops_marker(app)
    if marker is None:
        return None
    return (
        f'warning: {SINGULAR} "{dig(app, "metadata", "name")}" looks managed by GitOps '
        f"({marker}): a GitOps tool with self-heal will undo this kubectl change; "
        "change the manifest in Git instead"
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
    created = dig(obj, "metadata", "creationTimestamp")
    if not created:
        return NONE
    then = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
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
                revision_of(deployment) or NONE,
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
    if dig(app, "status", "phase") == "Paused" and not dig(app, "spec", "promote"):
        name = dig(app, "metadata", "name")
        return f"kubectl bluegreen promote {name}   (or set promote: true in Git)"
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


# --- The cluster -----------------------------------------------------------------------------


class Kube:
    """The plugin's only door to the API. One request per method; failures become PluginError."""

    def __init__(self, api: client.ApiClient, *, timeout: float) -> None:
        self.api = api
        self.timeout = timeout
        self.objects = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)

    def list_apps(self, namespace: str | None) -> list[Obj]:
        """The apps of one namespace, or of all (``namespace`` None)."""

        def request() -> Any:
            if namespace is None:
                return self.objects.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=self.timeout
                )
            return self.objects.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _request_timeout=self.timeout
            )

        answer = self._call("list BlueGreenApps", namespace, request)
        return list(answer.get("items") or [])

    def get_app(self, namespace: str, name: str) -> Obj:
        answer = self._call(
            f"read {SINGULAR} {name}",
            namespace,
            lambda: self.objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.timeout
            ),
        )
        return dict(answer)

    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        """The Deployment as plain JSON, or None on 404: a color may not exist yet."""
        deployment = self._call(
            f"read Deployment {name}",
            namespace,
            lambda: self.apps.read_namespaced_deployment(
                name, namespace, _request_timeout=self.timeout
            ),
            missing_ok=True,
        )
        if deployment is None:
            return None
        return dict(self.api.sanitize_for_serialization(deployment))  # type: ignore[no-untyped-call]

    def get_deployments(self, namespace: str, app_name: str) -> dict[Color, Obj | None]:
        return {
            color: self.get_deployment(namespace, names.deployment_name(app_name, color))
            for color in names.COLORS
        }

    def patch_app(
        self, namespace: str, name: str, patch: Obj | list[Obj], *, content_type: str
    ) -> Obj:
        answer = self._call(
            f"change {SINGULAR} {name}",
            namespace,
            lambda: self.objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                _content_type=content_type,
                _request_timeout=self.timeout,
            ),
        )
        return dict(answer)

    def follow(self, namespace: str, app_name: str, events: queue.Queue[object]) -> None:
        """Put a token on ``events`` for every change of the app or its Deployments, forever.

        Two watches in two daemon threads. An error ends its thread and goes on the queue
        as a PluginError, for the main thread to report.
        """
        app_watch = (
            self.objects.list_namespaced_custom_object,
            {
                "group": GROUP,
                "version": VERSION,
                "namespace": namespace,
                "plural": PLURAL,
                "field_selector": f"metadata.name={app_name}",
            },
        )
        deployments_watch = (
            self.apps.list_namespaced_deployment,
            {"namespace": namespace, "label_selector": f"{names.LABEL_APP}={app_name}"},
        )
        for list_call, arguments in (app_watch, deployments_watch):
            threading.Thread(
                target=self._stream, args=(list_call, arguments, events), daemon=True
            ).start()

    def _stream(
        self, list_call: Callable[..., Any], arguments: Obj, events: queue.Queue[object]
    ) -> None:
        try:
            while True:
                # The server ends each watch, and the client read timeout comes just after,
                # so a dead connection is noticed. Each restart relists: the extra events
                # only cause a re-read, and the watch prints nothing that did not change.
                for _ in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    list_call,
                    **arguments,
                    timeout_seconds=WATCH_SECONDS,
                    deserialize=False,
                    _request_timeout=(self.timeout, WATCH_SECONDS + self.timeout),
                ):
                    events.put("changed")
        except Exception as error:
            events.put(self._plugin_error(error, "watch", arguments["namespace"]))

    def _call(
        self,
        what: str,
        namespace: str | None,
        request: Callable[[], Any],
        *,
        missing_ok: bool = False,
    ) -> Any:
        """Run one request; None on 404 when ``missing_ok``, else failures as PluginError."""
        try:
            return request()
        except client.ApiException as error:
            if missing_ok and error.status == 404:
                return None
            raise self._plugin_error(error, what, namespace) from None
        except urllib3.exceptions.HTTPError as error:
            raise self._plugin_error(error, what, namespace) from None

    def _plugin_error(self, error: Exception, what: str, namespace: str | None) -> PluginError:
        if isinstance(error, client.ApiException):
            return PluginError(
                describe_api_error(
                    error.status, error.reason, error.body, what=what, namespace=namespace
                )
            )
        if isinstance(error, urllib3.exceptions.HTTPError):
            host = self.api.configuration.host
            return PluginError(describe_connection_error(error, host, self.timeout))
        return PluginError(f"could not {what}: {error}")


def connect(kubeconfig: str | None, context: str | None, timeout: float) -> tuple[Kube, str]:
    """A Kube for the kubeconfig (or $KUBECONFIG, or ~/.kube/config), and its namespace.

    Inside a pod with no kubeconfig, the pod's service account is used, as kubectl does.
    """
    source = kubeconfig_source(kubeconfig)
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=source, context=context, client_configuration=configuration
        )
        namespace = context_namespace(source, context)
    except config.ConfigException as error:
        if kubeconfig is not None or context is not None or not is_in_a_pod():
            raise PluginError(describe_config_error(error, source)) from None
        namespace = load_in_cluster_config(configuration)
    except Exception as error:  # a broken file: YAML, base64, a missing certificate file...
        raise PluginError(describe_config_error(error, source)) from None
    # A command line tool should fail at once and say why, not retry in silence.
    configuration.retries = 0
    return Kube(client.ApiClient(configuration), timeout=timeout), namespace


def kubeconfig_source(kubeconfig: str | None) -> str:
    """Where the kubeconfig comes from, read now: the client library reads $KUBECONFIG
    only once, when it is imported. A list of paths (a:b) is merged, as kubectl does."""
    return kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"


def context_namespace(source: str, context: str | None) -> str:
    """The namespace of the chosen (or current) context, as kubectl would use it."""
    contexts, current = config.list_kube_config_contexts(config_file=source)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return dig(chosen, "context", "namespace") or "default"


def is_in_a_pod() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


def load_in_cluster_config(configuration: client.Configuration) -> str:
    """Load the pod's service account into ``configuration``; return the pod's namespace."""
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        with open(SERVICE_ACCOUNT_NAMESPACE) as file:
            return file.read().strip() or "default"
    except (config.ConfigException, OSError) as error:
        raise PluginError(f"no kubeconfig, and no usable service account: {error}") from None


def describe_config_error(error: Exception, source: str) -> str:
    if "No configuration found" in str(error):
        return f"no kubeconfig found at {source}: set KUBECONFIG or pass --kubeconfig"
    return f"cannot use the kubeconfig at {source}: {error}"


# --- Commands --------------------------------------------------------------------------------


def run_list(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    namespace = None if args.all_namespaces else args.namespace
    apps = kube.list_apps(namespace)
    print(render_list(apps, datetime.now(UTC), namespace=namespace), file=out)
    return 0


def run_status(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    if args.watch:
        return watch_status(kube, args.namespace, args.name, out)
    app = kube.get_app(args.namespace, args.name)
    print(render_status(app, kube.get_deployments(args.namespace, args.name)), file=out)
    return 0


def watch_status(kube: Kube, namespace: str, name: str, out: TextIO) -> int:
    """Print the status, then again on every change of the app or its Deployments.

    Ctrl-C is the way out, so it ends with 0.
    """
    events: queue.Queue[object] = queue.Queue()
    # Watch first, then read: a change between the two is not lost.
    kube.follow(namespace, name, events)
    printed = None
    try:
        while True:
            app = kube.get_app(namespace, name)  # gone: an error, not an empty screen
            text = render_status(app, kube.get_deployments(namespace, name))
            if text != printed:
                if printed is not None:
                    print(file=out)
                print(f"--- {datetime.now(UTC):%H:%M:%S} UTC ---\n{text}", file=out, flush=True)
                printed = text
            wait_for_change(events)
    except KeyboardInterrupt:
        return 0


def wait_for_change(events: queue.Queue[object]) -> None:
    """Block until an event arrives, then let the burst that came with it drain."""
    item = events.get()
    while True:
        if isinstance(item, PluginError):
            raise item
        try:
            item = events.get(timeout=0.2)
        except queue.Empty:
            return


def run_promote(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    app = kube.get_app(args.namespace, args.name)
    warn_if_gitops(app)
    patched = kube.patch_app(
        args.namespace, args.name, promote_patch(), content_type="application/merge-patch+json"
    )
    print(promote_message(patched), file=out)
    return 0


def run_rollback(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    app = kube.get_app(args.namespace, args.name)
    target = rollback_target(app, kube.get_deployments(args.namespace, args.name))
    warn_if_gitops(app)
    patch = rollback_patch(app, target.template, promote=args.promote)
    kube.patch_app(args.namespace, args.name, patch, content_type="application/json-patch+json")
    print(rollback_message(args.name, target, promote=moves_prod(app, args.promote)), file=out)
    return 0


def warn_if_gitops(app: Obj) -> None:
    warning = gitops_warning(app)
    if warning:
        print(warning, file=sys.stderr)


# --- Command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl bluegreen", description="See and steer BlueGreenApps (bluegreen.dev)."
    )
    add_connection_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list BlueGreenApps")
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    listing.set_defaults(run=run_list)

    status = commands.add_parser("status", help="colors, revisions, readiness, conditions")
    status.add_argument("name")
    status.add_argument("-w", "--watch", action="store_true", help="print again on every change")
    status.set_defaults(run=run_status)

    promote = commands.add_parser("promote", help="move prod to the new revision once ready")
    promote.add_argument("name")
    promote.set_defaults(run=run_promote)

    rollback = commands.add_parser("rollback", help="put the previous revision's template back")
    rollback.add_argument("name")
    rollback.add_argument("--promote", action="store_true", help="also set promote: true")
    rollback.set_defaults(run=run_rollback)

    for command in (listing, status, promote, rollback):
        # Also accepted after the command, as kubectl does; SUPPRESS keeps a value given
        # before the command from being reset by the subcommand's default.
        add_connection_options(command, default=argparse.SUPPRESS)
    return parser


def add_connection_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    timeout_default = DEFAULT_REQUEST_TIMEOUT if default is None else default
    parser.add_argument("-n", "--namespace", default=default, help="default: the context's")
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument("--kubeconfig", default=default, help="default: $KUBECONFIG")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=timeout_default,
        help=f"seconds to wait for the API server (default: {DEFAULT_REQUEST_TIMEOUT:g})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        kube, default_namespace = connect(args.kubeconfig, args.context, args.request_timeout)
        args.namespace = args.namespace or default_namespace
        code: int = args.run(kube, args, sys.stdout)
        return code
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
