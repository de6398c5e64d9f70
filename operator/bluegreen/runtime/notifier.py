"""Sending notifications, on threads of their own: never on a reconcile's path.

A pass records what is owed in ``status.notifications`` (:mod:`bluegreen.core.notify`) and
hands the app to :meth:`Notifier.want`. A dispatcher thread reads the destinations (the
``bluegreen-notifications`` ConfigMap of the app's namespace, else the cluster default's,
and the Secret beside it, by name, when sending) and queues each delivery on its
destination's own thread, so one that hangs holds up no other.

Once per event, across restarts and leader changes: before its first request a delivery
is marked ``Sending`` in the status (a fenced write: a replica that does not lead sends
nothing), and ``Sent`` or ``Failed`` after. A replica that finds a delivery ``Sending`` that
it did not start knows the replica before it stopped mid-request: it does not send it
again (the receiver may have it) but marks it ``Uncertain`` with a Warning Event. Failures
are retried with backoff for the destination's ``retryForSeconds``, then reported: a
Warning Event and ``bluegreen_notifications{outcome="failed"}``. URLs and tokens are
secrets: they never reach a log line, an Event or the status.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic
import yaml

from bluegreen.api.destinations import CONFIG_KEY, CONFIG_NAME, Destination, DestinationList
from bluegreen.api.models import NotificationRecord, Notifications
from bluegreen.core import notify, payloads, reasons
from bluegreen.core.clock import format_time, utcnow
from bluegreen.core.objects import Key, Obj
from bluegreen.kube.client import Kube
from bluegreen.runtime import metrics

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
NONE = "(none)"  # the delivery key when no destination could be found
UNCERTAIN = "the replica sending it stopped mid-request; not sent again (no duplicate)"


class DeliveryError(Exception):
    """A request that did not succeed, described without its URL or headers."""


@dataclass(frozen=True)
class Job:
    app: Obj  # the app's body (the Events' involved object)
    notification_id: str
    record: NotificationRecord
    destination: Destination
    url: str
    token: str | None

    @property
    def key(self) -> Key:
        return (self.app["metadata"]["namespace"], self.app["metadata"]["name"])


Sender = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One POST; the status code, or DeliveryError (that names no URL)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        with err:
            raise DeliveryError(f"HTTP {err.code}") from None
    except urllib.error.URLError as err:
        raise DeliveryError(f"unreachable: {type(err.reason).__name__}: {err.reason}") from None
    except TimeoutError:
        raise DeliveryError(f"no answer within {timeout:g}s") from None
    except OSError as err:
        raise DeliveryError(f"{type(err).__name__}: {err.strerror or err}") from None


def request_of(job: Job) -> tuple[str, bytes, dict[str, str]]:
    """Where to POST, the body and the headers for one delivery."""
    ns, name = job.key
    dest, record = job.destination, job.record
    headers = {"Content-Type": "application/json", "User-Agent": "bluegreen-operator"}
    url = job.url
    body: Any
    if dest.kind == "webhook":
        body = payloads.cloudevent(job.notification_id, record, ns, name)
        headers["Content-Type"] = payloads.CLOUDEVENTS_CONTENT_TYPE
    elif dest.kind == "slack":
        body = payloads.slack(record, ns, name)
    elif dest.kind == "teams":
        body = payloads.teams(record, ns, name)
    else:
        body = payloads.alerts(job.notification_id, record, ns, name, dest.resolveAfterSeconds)
        url = url.rstrip("/") + "/api/v2/alerts"
    if job.token:
        headers["Authorization"] = f"Bearer {job.token}"
    return url, json.dumps(body).encode(), headers


def scrubbed(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class Notifier:
    """The dispatcher and one thread per destination."""

    def __init__(
        self,
        kube: Kube,
        cluster_namespace: str | None = None,
        sender: Sender = http_post,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kube = kube
        self.cluster_namespace = cluster_namespace
        self.sender = sender
        self.sleep = sleep
        self._lock = threading.Lock()
        self._owned: set[tuple[Key, str, str]] = set()  # started by this process
        self._settled: set[tuple[Key, str]] = set()  # every delivery final
        self._wanted: queue.Queue[tuple[Obj, dict[str, NotificationRecord], Notifications]] = (
            queue.Queue()
        )
        self._workers: dict[tuple[str, str], queue.Queue[Job]] = {}
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None

    # ---------------------------------------------------------------- from the reconciler

    def want(self, app: Obj, records: dict[str, NotificationRecord], config: Notifications) -> None:
        """The app's record as its pass left it: send what is owed (returns at once)."""
        if not records:
            return
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch_forever, name="notify-dispatch", daemon=True
                )
                self._dispatcher.start()
        self._wanted.put((app, records, config))

    def stop_all(self) -> None:
        self._stopping.set()

    # ---------------------------------------------------------------- the dispatcher

    def _dispatch_forever(self) -> None:
        while not self._stopping.is_set():
            app, records, config = self._wanted.get()
            try:
                self.dispatch(app, records, config)
            except Exception:
                meta = app["metadata"]
                log.exception(
                    "%s/%s: notifications not dispatched", meta["namespace"], meta["name"]
                )

    def dispatch(
        self, app: Obj, records: dict[str, NotificationRecord], config: Notifications
    ) -> None:
        """Queue every delivery still owed, on its destination's thread."""
        meta = app["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        with self._lock:
            open_ = {
                nid: r
                for nid, r in records.items()
                if (key, nid) not in self._settled and NONE not in r.deliveries
            }
        if not open_:
            return  # the common case: every notification of the app is settled
        found = self._destinations(key[0])
        if isinstance(found, str):
            for nid, record in open_.items():
                self._fail_once(app, nid, record, NONE, found)
            return
        config_ns, destinations, secret = found
        chosen = [
            d for d in destinations if not config.destinations or d.name in config.destinations
        ]
        missing = sorted(set(config.destinations) - {d.name for d in destinations})
        for nid, record in open_.items():
            for name in missing:
                why = f"destination {name} is not in ConfigMap {config_ns}/{CONFIG_NAME}"
                self._fail_once(app, nid, record, name, why)
            if not chosen and not missing:
                why = f"ConfigMap {config_ns}/{CONFIG_NAME} lists no destination"
                self._fail_once(app, nid, record, NONE, why)
            owed = notify.undelivered(record, [d.name for d in chosen])
            if not owed:
                with self._lock:
                    self._settled.add((key, nid))
                continue
            for dest in chosen:
                if dest.name not in owed or not self._own(key, nid, dest.name):
                    continue
                state = record.deliveries.get(dest.name)
                if state is not None and state.state == "Sending":
                    why = UNCERTAIN
                    self._final(
                        app,
                        nid,
                        record,
                        dest.name,
                        "Uncertain",
                        state.attempts,
                        why,
                        kind=dest.kind,
                    )
                    continue
                url = dest.url or secret.get(dest.urlSecretKey or "")
                token = secret.get(dest.tokenSecretKey) if dest.tokenSecretKey else None
                if not url or (dest.tokenSecretKey and not token):
                    absent = dest.tokenSecretKey if url else dest.urlSecretKey
                    why = f"Secret {config_ns}/{CONFIG_NAME} has no key {absent}"
                    self._final(app, nid, record, dest.name, "Failed", 0, why, kind=dest.kind)
                    continue
                self._worker(config_ns, dest.name).put(Job(app, nid, record, dest, url, token))

    def _own(self, key: Key, notification_id: str, destination: str) -> bool:
        """Whether this call is the first of this process to take on the delivery."""
        owned = (key, notification_id, destination)
        with self._lock:
            if owned in self._owned:
                return False
            self._owned.add(owned)
            return True

    def _fail_once(
        self, app: Obj, notification_id: str, record: NotificationRecord, dest: str, why: str
    ) -> None:
        """Report a delivery that cannot be made (no ConfigMap, an unknown name)."""
        key = (app["metadata"]["namespace"], app["metadata"]["name"])
        if dest not in record.deliveries and self._own(key, notification_id, dest):
            self._final(app, notification_id, record, dest, "Failed", 0, why, kind="none")

    def _destinations(self, namespace: str) -> tuple[str, list[Destination], dict[str, str]] | str:
        """The namespace's destinations (else the cluster default's) and the Secret's
        values, or why there are none."""
        for ns in dict.fromkeys(n for n in (namespace, self.cluster_namespace) if n):
            config_map = self.kube.get("ConfigMap", ns, CONFIG_NAME)
            if config_map is None:
                continue
            text = (config_map.get("data") or {}).get(CONFIG_KEY, "")
            try:
                listed = DestinationList.model_validate(
                    {"destinations": yaml.safe_load(text) or []}
                )
            except (yaml.YAMLError, pydantic.ValidationError) as err:
                return f"ConfigMap {ns}/{CONFIG_NAME} is invalid: {_short(err)}"
            secret: dict[str, str] = {}
            if any(d.urlSecretKey or d.tokenSecretKey for d in listed.destinations):
                found = self.kube.get("Secret", ns, CONFIG_NAME)
                for k, v in ((found or {}).get("data") or {}).items():
                    secret[k] = base64.b64decode(v).decode(errors="replace").strip()
            return ns, listed.destinations, secret
        where = " or ".join(n for n in (namespace, self.cluster_namespace) if n)
        return f"no ConfigMap {CONFIG_NAME} in {where}"

    # ---------------------------------------------------------------- the destinations' threads

    def _worker(self, namespace: str, name: str) -> queue.Queue[Job]:
        with self._lock:
            jobs = self._workers.get((namespace, name))
            if jobs is None:
                jobs = self._workers[(namespace, name)] = queue.Queue()
                threading.Thread(
                    target=self._deliver_forever, args=(jobs,), name=f"notify-{name}", daemon=True
                ).start()
        return jobs

    def _deliver_forever(self, jobs: queue.Queue[Job]) -> None:
        while not self._stopping.is_set():
            job = jobs.get()
            try:
                self.deliver(job)
            except Exception:
                ns, name = job.key
                log.exception(
                    "%s/%s: notification %s to %s",
                    ns,
                    name,
                    job.notification_id,
                    job.destination.name,
                )
                with self._lock:
                    self._owned.discard((job.key, job.notification_id, job.destination.name))

    def deliver(self, job: Job) -> None:
        """Mark it Sending (fenced), send with retries, then record the outcome."""
        dest = job.destination
        self._record(
            job.app,
            job.notification_id,
            dest.name,
            {"state": "Sending", "attempts": 0, "time": format_time(utcnow())},
        )
        url, body, headers = request_of(job)
        deadline = time.monotonic() + dest.retryForSeconds
        backoff, attempts, error = FIRST_BACKOFF, 0, ""
        while True:
            attempts += 1
            try:
                code = self.sender(url, body, headers, dest.timeoutSeconds)
                metrics.observe_notification_request(dest.kind, "ok")
                self._final(
                    job.app,
                    job.notification_id,
                    job.record,
                    dest.name,
                    "Sent",
                    attempts,
                    None,
                    kind=dest.kind,
                    code=code,
                )
                return
            except DeliveryError as err:
                error = scrubbed(str(err), job.url, job.token)
                metrics.observe_notification_request(dest.kind, "error")
            if self._stopping.is_set() or time.monotonic() + backoff > deadline:
                break
            ns, name = job.key
            log.info(
                "%s/%s: notification %s to %s failed (%s); retrying in %gs",
                ns,
                name,
                job.record.event,
                dest.name,
                error,
                backoff,
            )
            self.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
        self._final(
            job.app,
            job.notification_id,
            job.record,
            dest.name,
            "Failed",
            attempts,
            error,
            kind=dest.kind,
        )

    def _final(
        self,
        app: Obj,
        notification_id: str,
        record: NotificationRecord,
        destination: str,
        state: str,
        attempts: int,
        error: str | None,
        *,
        kind: str,
        code: int | None = None,
    ) -> None:
        meta = app["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        entry = {
            "state": state,
            "attempts": attempts,
            "time": format_time(utcnow()),
            "error": error,
        }
        self._record(app, notification_id, destination, entry)
        metrics.observe_notification(kind, state.lower())
        about = f"notification {record.event} ({notification_id}) to {destination}"
        if state == "Sent":
            log.info("%s: %s sent (HTTP %s, %d attempts)", where, about, code, attempts)
            self.kube.post_event(app, "Normal", reasons.NOTIFIED, f"{about} sent")
            return
        reason = (
            reasons.NOTIFICATION_UNCERTAIN if state == "Uncertain" else reasons.NOTIFICATION_FAILED
        )
        message = f"{about} {state.lower()} after {attempts} attempts: {error}"
        log.warning("%s: %s", where, message)
        self.kube.post_event(app, "Warning", reason, message)

    def _record(self, app: Obj, notification_id: str, destination: str, delivery: Obj) -> None:
        meta = app["metadata"]
        patch = {"notifications": {notification_id: {"deliveries": {destination: delivery}}}}
        self.kube.patch_app_status(meta["namespace"], meta["name"], patch)


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:300]
