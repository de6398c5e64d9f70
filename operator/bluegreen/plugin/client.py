"""The plugin's only door to the API: :class:`PluginClient`, and loading the kubeconfig.

Every failure becomes a one-line :class:`~bluegreen.plugin.view.PluginError`.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes import client, config, watch

from bluegreen.api.models import GROUP, KIND, PLURAL, SINGULAR, VERSION, Color
from bluegreen.core import names
from bluegreen.core.objects import Obj
from bluegreen.plugin.view import (
    PluginError,
    describe_api_error,
    describe_connection_error,
    dig,
)

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
WATCH_SECONDS = 300
# What the dashboard follows: the apps, their Deployments (by the label every child
# carries) and the Events posted on apps. The Events' field selector is the API server's.
FOLLOWED = ("apps", "deployments", "events")
APP_EVENTS = f"involvedObject.kind={KIND}"


class WatchExpired(PluginError):
    """The watch's resourceVersion is too old (410 Gone): list again, then watch from there."""


class PluginClient:
    """The plugin's only door to the API. One request per method; failures become PluginError."""

    def __init__(self, api: client.ApiClient, *, timeout: float) -> None:
        self.api = api
        self.timeout = timeout
        self.objects = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

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

    def list_followed(self, kind: str, namespace: str | None) -> tuple[list[Obj], str]:
        """One LIST of a followed kind (FOLLOWED), as plain JSON, with its resourceVersion:
        where its watch starts."""
        list_call, arguments = self._followed(kind, namespace)
        answer = self._call(
            f"list {kind}",
            namespace,
            lambda: list_call(**arguments, _request_timeout=self.timeout, _preload_content=False),
        )
        listed = json.loads(answer.data)
        return list(listed.get("items") or []), str(dig(listed, "metadata", "resourceVersion"))

    def watch_followed(
        self, kind: str, namespace: str | None, resource_version: str, *, seconds: int
    ) -> Iterator[tuple[str, Obj]]:
        """The changes of a followed kind after ``resource_version``: (type, object as plain
        JSON), BOOKMARKs included (they carry only the new resourceVersion). Ends after
        ``seconds`` (the server's timeout; the read timeout comes just after, so a dead
        connection is noticed); raises WatchExpired on 410, PluginError on any other failure.
        """
        list_call, arguments = self._followed(kind, namespace)
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            list_call,
            **arguments,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            deserialize=False,
            _request_timeout=(self.timeout, seconds + self.timeout),
        )
        try:
            for event in stream:
                yield str(event["type"]), dict(event["object"])
        except client.ApiException as error:
            if error.status == 410:
                raise WatchExpired(f"the watch of {kind} expired") from None
            raise self._plugin_error(error, f"watch {kind}", namespace) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise self._plugin_error(error, f"watch {kind}", namespace) from None

    def _followed(self, kind: str, namespace: str | None) -> tuple[Callable[..., Any], Obj]:
        if kind == "apps":
            if namespace is None:
                return self.objects.list_cluster_custom_object, {
                    "group": GROUP,
                    "version": VERSION,
                    "plural": PLURAL,
                }
            return self.objects.list_namespaced_custom_object, {
                "group": GROUP,
                "version": VERSION,
                "namespace": namespace,
                "plural": PLURAL,
            }
        if kind == "deployments":
            selector = {"label_selector": names.LABEL_APP}
            if namespace is None:
                return self.apps.list_deployment_for_all_namespaces, selector
            return self.apps.list_namespaced_deployment, {"namespace": namespace, **selector}
        if kind == "events":
            selector = {"field_selector": APP_EVENTS}
            if namespace is None:
                return self.core.list_event_for_all_namespaces, selector
            return self.core.list_namespaced_event, {"namespace": namespace, **selector}
        raise ValueError(f"not a followed kind: {kind}")

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


def connect(
    kubeconfig: str | None, context: str | None, timeout: float
) -> tuple[PluginClient, str]:
    """A client for the kubeconfig (or $KUBECONFIG, or ~/.kube/config), and its namespace.

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
    return PluginClient(client.ApiClient(configuration), timeout=timeout), namespace


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
