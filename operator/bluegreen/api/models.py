"""The BlueGreenApp API: the one description of it.

These models validate the spec the operator reads, document every field, and generate
the CRD schema in ``crds/`` (see :mod:`bluegreen.tools.crdgen`). What a schema can say is said
here (types, minimums, enums, required fields); what only the API server can judge (a pod
template's details) is left to it and reported as a condition.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GROUP = "bluegreen.dev"
VERSION = "v1alpha1"
KIND = "BlueGreenApp"
PLURAL = "bluegreenapps"
SINGULAR = "bluegreenapp"
SHORT_NAMES = ["bga"]

# The longest child name is "<name>-preview", a Service name: a DNS-1035 label of at most
# 63 characters. The app name is also a label value (bluegreen.dev/app), also 63 at most.
MAX_NAME_LENGTH = 63 - len("-preview")
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# App "x" owns Service "x-preview"; an app named "x-preview" would want the same name for
# its prod Service. Refusing names that end in the suffix makes such collisions impossible.
RESERVED_NAME_SUFFIX = "-preview"

# Kubernetes stores replica counts as int32; a larger number would pass a plain integer
# schema and fail only later, at the Deployment.
MAX_REPLICAS = 2**31 - 1
# A rollback window longer than this is a typo, not a plan: the old color doubles the cost
# for as long as it runs. (It also keeps the switch time arithmetic far from overflowing.)
MAX_SCALE_DOWN_DELAY_SECONDS = 30 * 24 * 3600

# How deep a pod template may nest. A real one is about ten levels deep; anything far deeper
# is refused as invalid before it is copied, hashed or validated (all of which recurse).
MAX_TEMPLATE_DEPTH = 64

# The pod template is passed through to the Deployments as it is; the API server validates
# it there. The schema checks only what every template needs, so that a template without
# containers is refused at `kubectl apply` instead of later.
POD_TEMPLATE_SCHEMA: dict[str, Any] = {
    "x-kubernetes-preserve-unknown-fields": True,
    "required": ["spec"],
    "properties": {
        "metadata": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            # What the operator merges its own labels into: a string here would pass a
            # plain object schema and fail on every pass.
            "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "required": ["containers"],
            "properties": {
                "containers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                    },
                }
            },
        },
    },
}


def nesting_depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests (a scalar is 0), counted without recursion and only up to
    ``limit + 1``: a hostile object thousands of levels deep costs no more than a normal one."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        children = node.values() if isinstance(node, dict) else node
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _string_map(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{where} must be a map of strings")


def check_pod_template(template: dict[str, Any]) -> None:
    """Raise ValueError naming the first thing POD_TEMPLATE_SCHEMA would refuse, or a nesting
    deeper than MAX_TEMPLATE_DEPTH."""
    if nesting_depth(template, MAX_TEMPLATE_DEPTH) > MAX_TEMPLATE_DEPTH:
        raise ValueError(f"the template nests deeper than {MAX_TEMPLATE_DEPTH} levels")
    metadata = template.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("metadata must be an object")
    for key in ("labels", "annotations"):
        _string_map((metadata or {}).get(key), f"metadata.{key}")
    spec = template.get("spec")
    if not isinstance(spec, dict):
        raise ValueError("spec is required and must be an object")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValueError("spec.containers must list at least one container")
    for i, container in enumerate(containers):
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            raise ValueError(f"spec.containers[{i}] must be an object with a name")


Color = Literal["blue", "green"]
Phase = Literal["Healthy", "Progressing", "Paused", "Degraded"]


def _validated_by(rule: str, message: str) -> ConfigDict:
    """A model config with one CEL rule the API server checks (`x-kubernetes-validations`)."""
    return ConfigDict(
        extra="ignore",
        populate_by_name=True,
        json_schema_extra={"x-kubernetes-validations": [{"rule": rule, "message": message}]},
    )


def _checked_template(value: Any) -> Any:
    """What the CRD schema says of a pod template, checked again: an object stored under an
    older CRD, or given to an older API server, must be reported, never crash a pass."""
    if isinstance(value, dict):
        check_pod_template(value)
    return value


class _Model(BaseModel):
    # Unknown fields are ignored rather than refused: the CRD schema already pruned them,
    # and a newer CRD read by an older operator must not stop it.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ServicePort(_Model):
    """One port of the prod and preview Services, as in a Service's `spec.ports`."""

    name: str | None = Field(
        default=None, description="Port name; required by Kubernetes when there are several."
    )
    port: int = Field(ge=1, le=65535, description="Port the Service listens on.")
    targetPort: int | str | None = Field(
        default=None,
        description="Container port (number or name) to send to; defaults to `port`.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    protocol: Literal["TCP", "UDP", "SCTP"] = Field(default="TCP", description="IP protocol.")
    nodePort: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Node port for NodePort and LoadBalancer Services; allocated when unset. "
        "Applies to the prod Service only (two Services cannot share a node port).",
    )
    appProtocol: str | None = Field(default=None, description="Application protocol hint.")


class ServiceSpec(_Model):
    """The prod Service `<name>` and the preview Service `<name>-preview`."""

    model_config = _validated_by(
        "self.ports.size() <= 1 || self.ports.all(p, has(p.name))",
        "every port needs a name when there are several",
    )

    ports: list[ServicePort] = Field(
        min_length=1, description="Ports of both Services, as in a Service's `spec.ports`."
    )
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Service type of both Services."
    )


class IngressTLS(_Model):
    """A TLS entry, as in an Ingress's `spec.tls`."""

    hosts: list[str] = Field(default_factory=list, description="Hosts the certificate covers.")
    secretName: str | None = Field(default=None, description="Secret holding the certificate.")


class IngressSpec(_Model):
    """Ingresses `<name>` (prod host) and `<name>-preview` (preview host)."""

    model_config = _validated_by(
        "self.host != self.previewHost", "previewHost must differ from host"
    )

    className: str | None = Field(default=None, description="IngressClass of both Ingresses.")
    host: str = Field(min_length=1, description="Host served by the prod Ingress.")
    previewHost: str = Field(
        min_length=1, description="Host served by the preview Ingress; must differ from `host`."
    )
    path: str = Field(default="/", pattern=r"^/", description="Path prefix routed to the app.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations set on both Ingresses."
    )
    tls: list[IngressTLS] = Field(
        default_factory=list, description="TLS entries, set on both Ingresses."
    )


# Gateway API (sigs.k8s.io/gateway-api): HTTPRoutes `<name>` and `<name>-preview`.
# A hostname as HTTPRoute's `spec.hostnames` takes it: a DNS name, optionally `*.` first.
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_HOSTNAMES = 16
MAX_PARENT_REFS = 8


class GatewayParentRef(_Model):
    """A Gateway the routes attach to, as an HTTPRoute's `spec.parentRefs[]` (kind Gateway)."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Gateway.")
    namespace: str | None = Field(
        default=None,
        max_length=63,
        description="Namespace of the Gateway; default the app's. Another namespace's Gateway "
        "must allow routes from this one (its listeners' `allowedRoutes`).",
    )
    sectionName: str | None = Field(
        default=None,
        max_length=253,
        description="Listener of the Gateway to attach to; default every listener.",
    )


class PreviewHeader(_Model):
    """A request header that sends a request for a prod hostname to the preview."""

    name: str = Field(
        default="X-Preview",
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$",
        description="Header name (matched case-insensitively by the gateway).",
    )
    value: str = Field(
        default="true", min_length=1, max_length=4096, description="Exact value to match."
    )


class GatewaySpec(_Model):
    """HTTPRoutes `<name>` (the prod hostnames to the prod Service) and `<name>-preview`
    (the preview hostnames to the preview Service), attached to Gateway API Gateways."""

    model_config = _validated_by(
        "!has(self.previewHostnames) || self.previewHostnames.all(h, !(h in self.hostnames))",
        "previewHostnames must differ from hostnames",
    )

    parentRefs: list[GatewayParentRef] = Field(
        min_length=1,
        max_length=MAX_PARENT_REFS,
        description="Gateways both routes attach to.",
    )
    hostnames: list[Annotated[str, Field(max_length=253, pattern=HOSTNAME_PATTERN)]] = Field(
        min_length=1, max_length=MAX_HOSTNAMES, description="Hostnames routed to prod."
    )
    previewHostnames: list[Annotated[str, Field(max_length=253, pattern=HOSTNAME_PATTERN)]] = Field(
        default_factory=list,
        max_length=MAX_HOSTNAMES,
        description="Hostnames routed to the preview; none: no preview route.",
    )
    path: str = Field(default="/", pattern=r"^/", description="Path prefix routed to the app.")
    previewHeader: PreviewHeader | None = Field(
        default=None,
        description="When set, a request for a prod hostname carrying this header goes to "
        "the preview Service: the new version tested through the real hostname before the "
        "switch (once it is promoted, preview and prod are the same color).",
    )

    @model_validator(mode="after")
    def _distinct_hostnames(self) -> GatewaySpec:
        both = sorted(set(self.hostnames) & set(self.previewHostnames))
        if both:
            raise ValueError(f"previewHostnames must differ from hostnames: {', '.join(both)}")
        return self


CHECK_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_CHECK_NAME_LENGTH = 40
MAX_CHECKS = 16


class HttpCheck(_Model):
    """An HTTP request the operator sends to the preview Service (before the switch) and to
    the prod Service (while the previous color still runs after it)."""

    path: str = Field(default="/", pattern=r"^/", description="Path (and query) to request.")
    port: int | str | None = Field(
        default=None,
        description="Port of the Service, by number or name; default its first port.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    expectStatus: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200],
        min_length=1,
        description="HTTP status codes that count as a success; default `[200]`.",
    )
    bodyContains: str | None = Field(
        default=None, description="When set, a success also needs the body to contain this text."
    )
    timeoutSeconds: int = Field(
        default=2, ge=1, le=60, description="How long one request may take; longer is a failure."
    )
    intervalSeconds: int = Field(default=2, ge=1, le=300, description="Time between requests.")
    successThreshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive successes that pass the check."
    )
    failureThreshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that fail the check."
    )


class JobCheck(_Model):
    """A Job the operator runs in the app's namespace before the switch; its success passes
    the check. Its containers get `PREVIEW_SERVICE` (the preview Service's name),
    `PREVIEW_URL` (`http://<preview Service>.<namespace>.svc:<first port>`) and
    `REVISION` (the revision under test)."""

    template: dict[str, Any] = Field(
        description="Pod template of the Job, as in a Job's `spec.template`; `restartPolicy` "
        "is set to `Never`.",
        json_schema_extra=POD_TEMPLATE_SCHEMA,
    )
    backoffLimit: int = Field(
        default=0, ge=0, le=10, description="Retries of the Job's pod before the check fails."
    )
    activeDeadlineSeconds: int = Field(
        default=600, ge=1, le=86400, description="The check fails when the Job runs longer."
    )

    _check_template = field_validator("template", mode="before")(_checked_template)


# What a Prometheus check's query may name: replaced by the app's values before it is sent.
QUERY_PLACEHOLDERS = ("app", "namespace", "color", "revision")
# `< 0.01`, `>= 0.99`, `== 1`; several joined by `and` make a range: `>= 0 and < 0.5`.
_NUMBER = r"[-+]?([0-9]+([.][0-9]*)?([eE][-+]?[0-9]+)?|[.][0-9]+([eE][-+]?[0-9]+)?|Inf)"
_COMPARISON = r"(<=|>=|==|!=|<|>)\s*" + _NUMBER
CONDITION_PATTERN = rf"^\s*{_COMPARISON}(\s+and\s+{_COMPARISON})*\s*$"
Inconclusive = Literal["Fail", "Wait"]


class PrometheusAuth(_Model):
    """Credentials for the Prometheus server, from a Secret in the app's namespace. The
    operator reads the Secret (one GET per query) only when it is named here; it needs
    `get` on it, e.g. a Role with `resourceNames: [<secretName>]` bound to its account."""

    secretName: str = Field(min_length=1, description="Secret in the app's namespace.")
    type: Literal["Bearer", "Basic"] = Field(
        default="Bearer",
        description="`Bearer`: the Secret's `token` key as a bearer token; `Basic`: its "
        "`username` and `password` keys.",
    )


class PrometheusCheck(_Model):
    """A PromQL query the operator sends to a Prometheus server's HTTP API, judged by a
    condition: on the preview's pods before the switch, on the new active color's after it."""

    address: str = Field(
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="Base URL of the Prometheus server, e.g. `http://prometheus.monitoring:9090` "
        "(the query goes to `<address>/api/v1/query`).",
    )
    auth: PrometheusAuth | None = Field(
        default=None, description="Optional credentials from a Secret in the app's namespace."
    )
    query: str = Field(
        min_length=1,
        description="An instant PromQL query returning a scalar or a vector. `{{app}}`, "
        "`{{namespace}}`, `{{color}}` and `{{revision}}` are replaced by the app's name and "
        "namespace and the color and revision under test (the color the checked Service "
        "selects), so a query can select exactly the new pods.",
    )
    condition: str = Field(
        pattern=CONDITION_PATTERN,
        description="What every returned value must satisfy to be a success: a comparison "
        "(`< 0.01`, `>= 0.99`, `== 1`, also `!=`, `<=`, `>`), or several joined by `and` "
        "(`>= 0 and < 0.5`). With several series, every one must satisfy it.",
    )
    noData: Inconclusive = Field(
        default="Fail",
        description="What an answer with no value is (an empty vector, or only NaN, e.g. a "
        "rate of no requests): `Fail` counts a failure; `Wait` counts nothing (the streaks "
        "stand, the check goes on). Never a success.",
    )
    onError: Inconclusive = Field(
        default="Fail",
        description="What a query that gets no answer is (server unreachable, timeout, an "
        "error status, an unreadable Secret): `Fail` counts a failure; `Wait` counts "
        "nothing. Never a success.",
    )
    timeoutSeconds: int = Field(
        default=5,
        ge=1,
        le=60,
        description="How long one query may take (also sent as its `timeout`); longer is an error.",
    )
    intervalSeconds: int = Field(default=10, ge=1, le=300, description="Time between queries.")
    successThreshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive successes that pass the check."
    )
    failureThreshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that fail the check."
    )

    @field_validator("query")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        for name in re.findall(r"{{\s*([^{}]*?)\s*}}", value):
            if name not in QUERY_PLACEHOLDERS:
                known = ", ".join("{{" + p + "}}" for p in QUERY_PLACEHOLDERS)
                raise ValueError(f"unknown placeholder {{{{{name}}}}} (known: {known})")
        return value


class Check(_Model):
    """One gate: exactly one of `http`, `job` and `prometheus`."""

    model_config = _validated_by(
        "[has(self.http), has(self.job), has(self.prometheus)].exists_one(x, x)",
        "a check has exactly one of http, job and prometheus",
    )

    name: str = Field(
        min_length=1,
        max_length=MAX_CHECK_NAME_LENGTH,
        pattern=CHECK_NAME_PATTERN,
        description="Name of the check (a DNS label of at most 40 characters), unique in the app.",
    )
    http: HttpCheck | None = Field(default=None, description="An HTTP check.")
    job: JobCheck | None = Field(default=None, description="A Job check (before the switch only).")
    prometheus: PrometheusCheck | None = Field(
        default=None, description="A Prometheus query check."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        if [self.http, self.job, self.prometheus].count(None) != 2:
            raise ValueError("a check has exactly one of http, job and prometheus")
        return self


# What an app can be notified of (spec.notifications.events); docs/notifications.md.
NotifyEvent = Literal[
    "Switched",
    "SwitchedBack",
    "CheckFailed",
    "RolloutFailed",
    "RolloutStuck",
    "Conflict",
    "InvalidSpec",
]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
DESTINATION_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_STUCK_AFTER_SECONDS = 7 * 24 * 3600


class Notifications(_Model):
    """Who hears of this app's releases: which events, to which destinations (named in the
    `bluegreen-notifications` ConfigMap of the app's namespace, else in the cluster
    default's), with a link. See docs/notifications.md."""

    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS),
        min_length=1,
        description="What to notify: `Switched` (prod moved to a new revision), "
        "`SwitchedBack` (a check failed after the switch and prod went back), `CheckFailed` "
        "(a check failed on the preview), `RolloutFailed` (a Deployment passed its progress "
        "deadline or its pods cannot be created), `RolloutStuck` (Progressing for longer "
        "than `stuckAfterSeconds`), `Conflict` (a child's name is taken), `InvalidSpec`. "
        "Default: all.",
    )
    destinations: list[Annotated[str, Field(pattern=DESTINATION_NAME_PATTERN)]] = Field(
        default_factory=list,
        description="Names of destinations in the `bluegreen-notifications` ConfigMap "
        "(the namespace's, or the cluster default's when the namespace has none). Empty: "
        "every destination there.",
    )
    link: str | None = Field(
        default=None,
        max_length=1024,
        description="A link sent with each notification, e.g. to a dashboard or Argo CD; "
        "`{namespace}`, `{name}`, `{revision}` and `{event}` are replaced.",
    )
    stuckAfterSeconds: int = Field(
        default=1800,
        ge=60,
        le=MAX_STUCK_AFTER_SECONDS,
        description="`RolloutStuck` is sent once a release has been Progressing this long.",
    )


class BlueGreenAppSpec(_Model):
    """What the user declares: one app, deployed blue/green."""

    replicas: int = Field(
        default=1, ge=0, le=MAX_REPLICAS, description="Pods of the live (active) color."
    )
    template: dict[str, Any] = Field(
        description="Pod template, exactly as in a Deployment's `spec.template`. "
        "Each distinct template is a revision; changing it deploys the idle color. "
        "Checked here: `spec.containers` (at least one, each named), `metadata.labels` and "
        "`metadata.annotations` as maps of strings, and a nesting depth of at most 64; the "
        "rest is checked by the API server at the Deployment.",
        json_schema_extra=POD_TEMPLATE_SCHEMA,
    )
    service: ServiceSpec = Field(description="The prod and preview Services.")
    promote: bool = Field(
        default=False,
        description="When true, prod traffic moves to a new revision as soon as it is fully "
        "ready, and so does every later revision while it stays true. When false, a new "
        "revision waits on the preview Service.",
    )
    scaleDownDelaySeconds: int = Field(
        default=30,
        ge=0,
        le=MAX_SCALE_DOWN_DELAY_SECONDS,
        description="How long the previous color keeps its pods after a switch: the time "
        "kube-proxy needs to follow the selector change, and the instant-rollback window. "
        "At most 30 days.",
    )
    previewReplicas: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REPLICAS,
        description="Pods of a waiting preview (at most `replicas`); it is scaled up to "
        "`replicas` before the switch. Unset: the preview runs at `replicas`.",
    )
    ingress: IngressSpec | None = Field(
        default=None, description="Optional Ingresses for the prod and preview hosts."
    )
    gateway: GatewaySpec | None = Field(
        default=None,
        description="Optional Gateway API HTTPRoutes for the prod and preview hostnames "
        "(needs the Gateway API CRDs in the cluster).",
    )
    checks: list[Check] = Field(
        default_factory=list,
        max_length=MAX_CHECKS,
        description="Gates every new revision must pass on the preview before the switch; "
        "HTTP and Prometheus checks also run against prod (the new active color) while the "
        "previous color still runs after the switch, and a failure then switches prod back. "
        "See the behaviour table.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    retryChecks: int = Field(
        default=0,
        ge=0,
        description="Change it (e.g. add 1) to run the checks of the current revision again: "
        "after a failed check, or to allow a revision that was switched back to be promoted.",
    )

    notifications: Notifications | None = Field(
        default=None,
        description="Notifications of this app's switches, switch backs, failed checks and "
        "stuck rollouts to webhooks, Slack, Teams or Alertmanager; unset: none.",
    )

    _check_template = field_validator("template", mode="before")(_checked_template)

    @field_validator("checks")
    @classmethod
    def _unique_check_names(cls, value: list[Check]) -> list[Check]:
        seen = [c.name for c in value]
        doubles = sorted({n for n in seen if seen.count(n) > 1})
        if doubles:
            raise ValueError(f"check names must be unique: {', '.join(doubles)}")
        return value

    @model_validator(mode="after")
    def _check_ports_exist(self) -> BlueGreenAppSpec:
        ports = self.service.ports
        known = {p.name for p in ports if p.name} | {p.port for p in ports}
        for check in self.checks:
            wanted = check.http.port if check.http is not None else None
            if wanted is not None and wanted not in known:
                raise ValueError(f"check {check.name}: the Services have no port {wanted!r}")
        return self

    def preview_size(self) -> int:
        """Pods of a waiting preview: ``previewReplicas``, never more than ``replicas``."""
        if self.previewReplicas is None:
            return self.replicas
        return min(self.previewReplicas, self.replicas)


class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str = Field(description="`Available`, `Progressing` or `Degraded`.")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether it holds.")
    reason: str = Field(description="A CamelCase word for programs, e.g. `WaitingForPromotion`.")
    message: str = Field(default="", description="The same for people.")
    lastTransitionTime: str = Field(description="When `status` last changed (RFC 3339).")


CheckState = Literal["Pending", "Running", "Passed", "Failed"]
CheckStage = Literal["preview", "prod"]


class CheckStatus(_Model):
    """Where one check stands for one revision."""

    name: str = Field(description="The check's name in `spec.checks`.")
    stage: CheckStage = Field(
        description="`preview`: before the switch, against the preview Service; `prod`: "
        "after it, against the prod Service while the previous color still runs."
    )
    revision: str = Field(description="The revision it checks.")
    retry: int = Field(default=0, description="The `spec.retryChecks` it ran under.")
    state: CheckState = Field(description="Pending, Running, Passed or Failed.")
    successes: int = Field(default=0, description="Consecutive successes so far.")
    failures: int = Field(default=0, description="Consecutive failures so far.")
    message: str = Field(default="", description="The last answer, e.g. `HTTP 500: ...`.")
    value: str | None = Field(
        default=None,
        description="A Prometheus check's last value (the one that decided, with several "
        "series); absent when the last query returned none.",
    )


DeliveryState = Literal["Sending", "Sent", "Failed", "Uncertain"]


class Delivery(_Model):
    """One notification to one destination."""

    state: DeliveryState = Field(
        description="`Sending` (under way), `Sent`, `Failed` (retries ran out), `Uncertain` "
        "(the replica sending it stopped mid-request: not sent again, to send no duplicate)."
    )
    attempts: int = Field(default=0, description="Requests made.")
    time: str | None = Field(default=None, description="When the state was reached (RFC 3339).")
    error: str | None = Field(default=None, description="The last failure (never a secret).")


class NotificationRecord(_Model):
    """A notification the operator owes or sent: the record that makes it once per event,
    across restarts and leader changes."""

    event: NotifyEvent = Field(description="What happened.")
    time: str = Field(description="When the operator saw it (RFC 3339).")
    message: str = Field(default="", description="What the notification says.")
    revision: str | None = Field(default=None, description="The revision it is about.")
    previousRevision: str | None = Field(
        default=None, description="The revision prod served before (a switch, a switch back)."
    )
    check: str | None = Field(default=None, description="The failing check.")
    answer: str | None = Field(default=None, description="The failing check's last answer.")
    link: str | None = Field(default=None, description="The link sent with it.")
    deliveries: dict[str, Delivery] = Field(
        default_factory=dict, description="Each destination's delivery, by destination name."
    )


class BlueGreenAppStatus(_Model):
    """What the operator reports. It writes nothing else on the BlueGreenApp."""

    phase: Phase | None = Field(
        default=None, description="Healthy, Progressing, Paused or Degraded."
    )
    message: str | None = Field(default=None, description="What the app is doing or waits for.")
    observedGeneration: int | None = Field(
        default=None, description="The `metadata.generation` this status describes."
    )
    activeColor: Color | None = Field(default=None, description="Color serving prod traffic.")
    activeRevision: str | None = Field(default=None, description="Revision serving prod.")
    previewColor: Color | None = Field(
        default=None, description="Color of the waiting new revision; absent when none waits."
    )
    previewRevision: str | None = Field(
        default=None, description="Revision of the waiting preview; absent when none waits."
    )
    previousRevision: str | None = Field(
        default=None,
        description="Revision that served prod before the last switch, while its color still "
        "holds it (a rollback to it needs no new pods while that color still runs).",
    )
    replicas: int | None = Field(
        default=None,
        description="Pods of the live color (the scale subresource's status replicas).",
    )
    selector: str | None = Field(
        default=None,
        description="Label selector of the live color's pods: what `kubectl scale` and a "
        "HorizontalPodAutoscaler targeting the app measure.",
    )
    lastSwitchTime: str | None = Field(
        default=None,
        description="When prod last switched (RFC 3339): the rollback window runs from here.",
    )
    checks: list[CheckStatus] = Field(
        default_factory=list,
        description="Each check of the revision being released or verified; absent when none runs.",
    )
    rolledBackRevision: str | None = Field(
        default=None,
        description="A revision that failed a check after its switch and was switched back: "
        "it is not promoted again until the template or `spec.retryChecks` changes.",
    )
    rolledBackRetry: int | None = Field(
        default=None, description="The `spec.retryChecks` under which it was switched back."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Available, Progressing and Degraded."
    )
    notifications: dict[str, NotificationRecord] = Field(
        default_factory=dict,
        description="The latest notifications (at most 16) by id, each with its deliveries.",
    )
