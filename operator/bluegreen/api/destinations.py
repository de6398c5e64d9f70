"""Where notifications go: the destinations a platform team keeps in git, as the
``bluegreen-notifications`` ConfigMap (key ``destinations.yaml``) of an app's namespace,
or of the operator's namespace for the cluster-wide default.

A ConfigMap, not a CRD of its own: it is what Argo Rollouts' notifications engine uses
too, every GitOps tool and `kubectl` already handle it, and the operator reads one object
by name when it sends (RBAC: ``get`` on that one name), with no extra watch or CRD to
install. These models validate it; an invalid one is reported on the app as an Event.
Secrets (webhook URLs, tokens) are never here: a destination names a key of the Secret
``bluegreen-notifications`` beside the ConfigMap, read when a notification is sent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bluegreen.api.models import DESTINATION_NAME_PATTERN

CONFIG_NAME = "bluegreen-notifications"  # the ConfigMap and the Secret beside it
CONFIG_KEY = "destinations.yaml"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

DestinationKind = Literal["webhook", "slack", "teams", "alertmanager"]


class Destination(BaseModel):
    """One place notifications go."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=DESTINATION_NAME_PATTERN,
        max_length=63,
        description="What apps name in `spec.notifications.destinations`.",
    )
    kind: DestinationKind = Field(
        description="`webhook` (a CloudEvents JSON body), `slack` or `teams` (their incoming "
        "webhooks' payloads), `alertmanager` (its v2 alerts API; `url` is its base URL)."
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Where to send, when it is no secret (an in-cluster Alertmanager).",
    )
    urlSecretKey: str | None = Field(
        default=None,
        pattern=SECRET_KEY_PATTERN,
        description="The key of Secret `bluegreen-notifications` holding the URL (a Slack "
        "or Teams webhook URL is a credential).",
    )
    tokenSecretKey: str | None = Field(
        default=None,
        pattern=SECRET_KEY_PATTERN,
        description="The key of Secret `bluegreen-notifications` holding a bearer token, "
        "sent as `Authorization: Bearer <token>`.",
    )
    timeoutSeconds: float = Field(
        default=5.0, gt=0, le=60, description="How long one request may take."
    )
    retryForSeconds: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="How long failed requests are retried (with backoff) before the "
        "delivery is reported failed.",
    )
    resolveAfterSeconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description="alertmanager: the alert's `endsAt`, this long after it starts.",
    )

    @model_validator(mode="after")
    def _one_url(self) -> Destination:
        if (self.url is None) == (self.urlSecretKey is None):
            raise ValueError(f"destination {self.name}: exactly one of url and urlSecretKey")
        return self


class DestinationList(BaseModel):
    """The ConfigMap's ``destinations.yaml``: a list of destinations, names unique."""

    destinations: list[Destination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> DestinationList:
        seen = [d.name for d in self.destinations]
        doubles = sorted({n for n in seen if seen.count(n) > 1})
        if doubles:
            raise ValueError(f"destination names must be unique: {', '.join(doubles)}")
        return self
