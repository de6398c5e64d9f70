"""The BlueGreenApp API: the one description of it.

These models validate the spec the operator reads, document every field, and generate
the CRD schema in ``crds/`` (see :mod:`bluegreen.crdgen`). What a schema can say is said
here (types, minimums, enums, required fields); what only the API server can judge (a pod
template's details) is left to it and reported as a condition.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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

# The pod template is passed through to the Deployments as it is; the API server validates
# it there. The schema checks only what every template needs, so that a template without
# containers is refused at `kubectl apply` instead of later.
POD_TEMPLATE_SCHEMA: dict[str, Any] = {
    "x-kubernetes-preserve-unknown-fields": True,
    "required": ["spec"],
    "properties": {
        "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
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

Color = Literal["blue", "green"]
Phase = Literal["Healthy", "Progressing", "Paused", "Degraded"]


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

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.ports.size() <= 1 || self.ports.all(p, has(p.name))",
                    "message": "every port needs a name when there are several",
                }
            ]
        }
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

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.host != self.previewHost",
                    "message": "previewHost must differ from host",
                }
            ]
        }
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


class BlueGreenAppSpec(_Model):
    """What the user declares: one app, deployed blue/green."""

    replicas: int = Field(default=1, ge=0, description="Pods of the live (active) color.")
    template: dict[str, Any] = Field(
        description="Pod template, exactly as in a Deployment's `spec.template`. "
        "Each distinct template is a revision; changing it deploys the idle color.",
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
        description="How long the previous color keeps its pods after a switch: the time "
        "kube-proxy needs to follow the selector change, and the instant-rollback window.",
    )
    previewReplicas: int | None = Field(
        default=None,
        ge=0,
        description="Pods of a waiting preview (at most `replicas`); it is scaled up to "
        "`replicas` before the switch. Unset: the preview runs at `replicas`.",
    )
    ingress: IngressSpec | None = Field(
        default=None, description="Optional Ingresses for the prod and preview hosts."
    )

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
    conditions: list[Condition] = Field(
        default_factory=list, description="Available, Progressing and Degraded."
    )
