"""The one module that talks to the Kubernetes API, and owns the 404/409 policy.

Objects travel as plain dicts (the JSON the API server sends), not as client models: the
planner works on plain data, and skipping deserialisation keeps reconciles cheap.
Every function is one request plus normalisation.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import kubernetes
from kubernetes.watch.watch import iter_resp_lines

from bluegreen.api.models import GROUP, KIND, PLURAL, VERSION
from bluegreen.core import names
from bluegreen.core.clock import format_time, utcnow
from bluegreen.core.objects import Obj
from bluegreen.kube.errors import ApiError, NoCredentials, NotFound, NotLeading

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Where each kind lives in the REST API.
_BASES: Mapping[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses"),
    "HTTPRoute": ("/apis/gateway.networking.k8s.io/v1", "httproutes"),
    "Gateway": ("/apis/gateway.networking.k8s.io/v1", "gateways"),
    "ReplicaSet": ("/apis/apps/v1", "replicasets"),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices"),
    "Event": ("/api/v1", "events"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "Job": ("/apis/batch/v1", "jobs"),
    # Read by name only, when a notification is sent (api/destinations.py), as the
    # Secrets the checks name.
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    KIND: (f"/apis/{GROUP}/{VERSION}", PLURAL),
}


def plural_of(kind: str) -> str:
    """The kind's name in the REST API (``Ingress`` -> ``ingresses``)."""
    return _BASES[kind][1]


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Called after every request with its verb, its answer's status code ("<error>" when none
# came) and its duration. The metrics register here (controller-runtime's client adapter is
# the model), so this module knows nothing of them.
AnswerHook = Callable[[str, str, float], None]
_answer_hooks: list[AnswerHook] = []


def on_answer(hook: AnswerHook) -> None:
    """Call ``hook`` after every request of every client from now on."""
    _answer_hooks.append(hook)


def timed_call(verb: str, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Make one request (``call``) and tell the hooks of its answer."""
    started = time.perf_counter()
    code = "<error>"
    try:
        response = call(*args, **kwargs)
        code = str(getattr(response, "status", "<error>"))
        return response
    finally:
        seconds = time.perf_counter() - started
        for hook in _answer_hooks:
            hook(verb, code, seconds)


class Kube:
    """A thin, thread-safe facade over one API client connection pool."""

    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        timeout: float = 30.0,
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        """``may_write``: asked before every write; False refuses it (leader fencing)."""
        self._client = client
        self._timeout = timeout
        self._may_write = may_write
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # method -> count, for tests and benchmarks
        self._event_queue: queue.Queue[Obj] | None = None

    @classmethod
    def from_environment(cls, pool_size: int = 16, timeout: float = 30.0) -> Kube:
        """In a pod: its service account; elsewhere: the kubeconfig (KUBECONFIG honoured)."""
        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            try:
                kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
            except kubernetes.config.ConfigException as err:
                raise NoCredentials(str(err)) from None
        config.connection_pool_maxsize = pool_size
        return cls(kubernetes.client.ApiClient(configuration=config), timeout)

    def post_events_in_background(self, capacity: int = 10_000) -> None:
        """From now on Events are posted by a thread of their own, in order: a reconcile
        does not wait for them (the next write of a release, a switch, comes sooner).
        Past ``capacity`` waiting Events (the API server away for long), new ones are
        dropped with a log line: they are best-effort, and memory stays bounded."""
        self._event_queue = queue.Queue(maxsize=capacity)
        threading.Thread(target=self._post_queued_events, name="events", daemon=True).start()

    def _post_queued_events(self) -> None:
        assert self._event_queue is not None
        while True:
            event = self._event_queue.get()
            try:
                self._post(event)
            finally:
                self._event_queue.task_done()

    def flush_events(self, timeout: float) -> bool:
        """Wait until every queued Event is posted (a clean shutdown, while this replica
        may still write); False when some are still waiting after ``timeout`` seconds."""
        waiting = self._event_queue
        if waiting is None:
            return True
        deadline = time.monotonic() + timeout
        with waiting.all_tasks_done:
            while waiting.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                waiting.all_tasks_done.wait(left)
        return True

    def fenced(self, may_write: Callable[[], bool]) -> Kube:
        """A facade on the same connection pool (and request counts) whose writes ask
        ``may_write`` first."""
        twin = copy.copy(self)
        twin._may_write = may_write
        return twin

    # ------------------------------------------------------------------ transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        if method in WRITE_METHODS and self._may_write is not None and not self._may_write():
            raise NotLeading(f"{method} {path}: this replica does not lead")
        return self._send(method, path, body=body, query=query, content_type=content_type)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One request on the wire (the transport the tests replace)."""
        with self._lock:
            self.requests[method] += 1
        serialized = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        method_, url, headers, body_, _ = serialized
        response = timed_call(
            method,
            self._client.call_api,
            method_,
            url,
            header_params=headers,
            body=body_,
            _request_timeout=self._timeout,
        )
        raw = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise _error_from(response.status, response.reason, raw)
        return json.loads(raw) if raw else {}

    @staticmethod
    def path(kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        """The object's (or with no name, the collection's) path; namespace "" means the
        collection across all namespaces."""
        base, plural = _BASES[kind]
        path = f"{base}/namespaces/{quote(namespace)}/{plural}" if namespace else f"{base}/{plural}"
        if name:
            path += f"/{quote(name)}"
        if sub:
            path += f"/{sub}"
        return path

    @property
    def writes(self) -> int:
        return sum(n for method, n in self.requests.items() if method in WRITE_METHODS)

    # ------------------------------------------------------------------ reads

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist (404 is an answer, not an error)."""
        try:
            return self._request("GET", self.path(kind, namespace, name))
        except NotFound:
            return None

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded (a Prometheus check's credentials), or None when it
        does not exist. Read only for a check that names it, when the check queries: a
        rotated Secret is used at once, and nothing of it is kept."""
        secret = self.get("Secret", namespace, name)
        if secret is None:
            return None
        raw = secret.get("data") or {}
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}

    def list_raw(
        self,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        limit: int | None = None,
        continue_from: str | None = None,
    ) -> Obj:
        """One list answer (its resourceVersion and, when paged, its continue token), in
        one namespace or ("") all. ``limit``: at most that many items, the rest behind
        ``metadata.continue``, which ``continue_from`` reads on from."""
        query = {"labelSelector": label_selector}
        if limit is not None:
            query["limit"] = str(limit)
        if continue_from:
            query["continue"] = continue_from
        return self._request("GET", self.path(kind, namespace), query=query)

    def watch_lines(
        self, kind: str, namespace: str, query: Mapping[str, str], read_timeout: float
    ) -> Iterator[str]:
        """Open a watch; the lines of its stream, one event each, until the API server ends
        it (or nothing arrives for ``read_timeout``: a dead connection raises)."""
        with self._lock:
            self.requests["WATCH"] += 1
        path = self.path(kind, namespace)
        method, url, headers, body, _ = self._client.param_serialize(
            method="GET",
            resource_path=path,
            query_params=[*query.items(), ("watch", "true")],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = timed_call(
            "WATCH",
            self._client.call_api,
            method,
            url,
            header_params=headers,
            body=body,
            _request_timeout=(self._timeout, read_timeout),
        )
        urllib3_response = response.response
        if not 200 <= urllib3_response.status < 300:
            raise _error_from(
                urllib3_response.status, urllib3_response.reason, urllib3_response.read()
            )
        return _lines(urllib3_response)

    # ------------------------------------------------------------------ writes

    def create(self, namespace: str, body: Obj) -> Obj:
        """Create, never overwrite: 409 (it appeared meanwhile) is raised to the caller,
        whose next pass then sees who owns it."""
        return self._request("POST", self.path(body["kind"], namespace), body=body)

    def replace(self, namespace: str, body: Obj) -> Obj:
        """PUT the whole object. It carries the resourceVersion that was read: if the object
        changed since, the API server answers 409 and the caller looks again."""
        return self._request(
            "PUT", self.path(body["kind"], namespace, body["metadata"]["name"]), body=body
        )

    def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        uid: str | None = None,
        propagation: str | None = None,
    ) -> None:
        """Delete; already gone is fine. With a uid, only that very object is deleted.
        ``propagation``: e.g. ``Background`` (a Job's pods go too; the API's default for
        Jobs orphans them)."""
        body: Obj | None = {"preconditions": {"uid": uid}} if uid else None
        if propagation is not None:
            body = {**(body or {}), "propagationPolicy": propagation}
        with contextlib.suppress(NotFound):
            self._request("DELETE", self.path(kind, namespace, name), body=body)

    def patch_app_status(self, namespace: str, name: str, status: Obj) -> Obj | None:
        """Merge-patch the BlueGreenApp's status subresource: the app as it is then, or
        None when it is gone (which is fine)."""
        try:
            return self._request(
                "PATCH",
                self.path(KIND, namespace, name, "status"),
                body={"status": status},
                content_type="application/merge-patch+json",
            )
        except NotFound:
            return None

    def post_event(self, app: Obj, type_: str, reason: str, message: str) -> None:
        """Record an Event on the BlueGreenApp (`kubectl describe bga` shows it).

        Events are best-effort: failing to post one must not fail a reconcile."""
        meta = app["metadata"]
        now = format_time(utcnow())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": app["apiVersion"],
                "kind": app["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": names.MANAGER},
            "reportingComponent": names.MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        if self._event_queue is None:
            self._post(event)
            return
        try:
            self._event_queue.put_nowait(event)
        except queue.Full:
            where = f"{meta['namespace']}/{meta['name']}"
            log.warning("too many Events waiting to be posted; dropped %s on %s", reason, where)

    def _post(self, event: Obj) -> None:
        try:
            self._request("POST", self.path("Event", event["metadata"]["namespace"]), body=event)
        except Exception as err:  # any failure, urllib3's own too, is only logged
            involved = event["involvedObject"]
            log.warning(
                "could not post event %s on %s/%s: %s",
                event["reason"],
                involved["namespace"],
                involved["name"],
                err,
            )


def _lines(response: Any) -> Iterator[str]:
    try:
        yield from iter_resp_lines(response)  # type: ignore[no-untyped-call]
    finally:
        response.release_conn()


def _error_from(status: int, reason: str | None, raw: bytes | None) -> ApiError:
    message = ""
    try:
        message = str(json.loads(raw or b"{}").get("message", ""))
    except ValueError:
        message = (raw or b"").decode(errors="replace")[:500]
    return ApiError(status, reason or "", message)
