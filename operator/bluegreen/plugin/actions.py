"""The three things a user does to an app, one function each, for the command line and the
dashboard alike: promote, roll back, retry the checks.

Each reads the app, applies the plugin's rules (view.py: the rollback target, the GitOps
refusal, whether a retry would do anything), then makes ONE patch. A rule that says no is a
:class:`Refused`; the API server saying no (RBAC, an admission policy, a conflict) is the
client's :class:`~bluegreen.plugin.view.PluginError`, so a caller can tell "the plugin's
rules refused" from "the cluster refused".
"""

from __future__ import annotations

from dataclasses import dataclass

from bluegreen.core.objects import Obj
from bluegreen.plugin.client import PluginClient
from bluegreen.plugin.view import (
    PluginError,
    gitops_refusal,
    gitops_warning,
    moves_prod,
    promote_message,
    promote_patch,
    retry_message,
    retry_patch,
    retry_refusal,
    rollback_message,
    rollback_patch,
    rollback_target,
)

ACTIONS = ("promote", "rollback", "retry")
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class Refused(PluginError):
    """The plugin's own rules refuse the action; nothing was written."""


@dataclass(frozen=True)
class Done:
    """What an action did: the message to show, and the warning of a forced GitOps change."""

    message: str
    warning: str | None = None


def promote(kube: PluginClient, namespace: str, name: str, *, force: bool) -> Done:
    app = kube.get_app(namespace, name)
    warning = check_gitops(app, "promote", force=force)
    patched = kube.patch_app(namespace, name, promote_patch(), content_type=MERGE_PATCH)
    return Done(promote_message(patched), warning)


def rollback(
    kube: PluginClient, namespace: str, name: str, *, force: bool, promote: bool = False
) -> Done:
    app = kube.get_app(namespace, name)
    deployments = kube.get_deployments(namespace, name)
    try:
        target = rollback_target(app, deployments)  # pure: any PluginError is the rule's
    except PluginError as error:
        raise Refused(str(error)) from None
    warning = check_gitops(app, "rollback", force=force)
    patch = rollback_patch(app, target.template, promote=promote)
    kube.patch_app(namespace, name, patch, content_type=JSON_PATCH)
    return Done(rollback_message(name, target, promote=moves_prod(app, promote)), warning)


def retry(kube: PluginClient, namespace: str, name: str, *, force: bool) -> Done:
    app = kube.get_app(namespace, name)
    refusal = retry_refusal(app)
    if refusal:
        raise Refused(refusal)
    warning = check_gitops(app, "retry", force=force)
    patched = kube.patch_app(namespace, name, retry_patch(app), content_type=JSON_PATCH)
    return Done(retry_message(patched), warning)


def check_gitops(app: Obj, command: str, *, force: bool) -> str | None:
    """Refuse to change an app that a GitOps tool manages, unless forced; the warning of a
    forced change (None when no GitOps tool manages it)."""
    if not force:
        refusal = gitops_refusal(app, command)
        if refusal:
            raise Refused(refusal)
    return gitops_warning(app, command)
