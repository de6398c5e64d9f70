"""List once, then watch: feeds the :class:`~bluegreen.store.Store` with one kind of child.

One thread per watched kind (per namespace when the operator is limited to namespaces).
The official client blocks, so a thread reads the stream; each event updates the store
and then wakes the child's app through ``on_event`` (which hops to the event loop).

- A listing replaces what the store held of the kind, so a watch that expired (410 Gone)
  loses nothing: objects deleted meanwhile go. It is read in pages (``limit`` and
  ``continue``), each slimmed to what planning reads before the next is asked for, so no
  answer holds a whole large kind; a continue token that expired lists again from the start.
- Watches resume from the last resourceVersion (bookmarks keep it fresh while nothing
  changes); the API server ends each one after ``watch_seconds``, and one silent for longer
  than that sits on a dead connection and is replaced: a change goes unseen for seconds at
  most after a network fault ends.
- A kind the operator may not list or watch (missing RBAC) is recorded in the store, so the
  apps say so in their status, and tried again every few seconds until it is granted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

from bluegreen.core.objects import Obj
from bluegreen.kube.client import Kube
from bluegreen.kube.errors import ApiError, Forbidden, NotFound, Unauthorized
from bluegreen.runtime.store import Store, resource_version, slim

log = logging.getLogger(__name__)

OnEvent = Callable[[str, str, Obj], None]  # kind, event type, object

RETRY_DELAYS = (0.5, 1.0, 2.0)
# Items per list request: the answers client-go's reflector asks for too.
LIST_PAGE_SIZE = 500
RETRY_AFTER_REFUSAL = 5.0


class Informer:
    """Lists and watches one kind, label-selected, in one namespace ("" for all)."""

    def __init__(
        self,
        kube: Kube,
        store: Store,
        kind: str,
        namespace: str,
        label_selector: str,
        on_event: OnEvent,
        watch_seconds: int = 5,
        on_answer: Callable[[], None] = lambda: None,
        on_relisted: Callable[[str], None] = lambda namespace: None,
        on_listed: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_answer``: called whenever the API server answered (it is reachable);
        ``on_relisted``: a listing other than the first replaced what the store held (the
        watch had expired, or the kind was refused until now): every app in the namespace
        ("" for all) may have missed events; ``on_listed``: after each successful listing."""
        self.kube, self.store, self.kind, self.namespace = kube, store, kind, namespace
        self.label_selector = label_selector
        self.on_event = on_event
        self.on_answer = on_answer
        self.on_relisted = on_relisted
        self.on_listed = on_listed
        self.watch_seconds = watch_seconds
        self.synced = threading.Event()  # set once the first listing is in the store (or refused)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{kind.lower()}-{namespace or 'all'}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    # ---------------------------------------------------------------- the loop

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                failures = 0
                self._watch_until_expired(version)
            except (Forbidden, Unauthorized) as err:
                self.store.refuse(self.kind, self.namespace, err.message or str(err))
                self.synced.set()  # the apps report it; nothing to wait for
                self._stop.wait(RETRY_AFTER_REFUSAL)
                continue
            except NotFound:
                self._unserved()
                self._stop.wait(RETRY_AFTER_REFUSAL)
                continue
            except ApiError as err:
                failures += 1
                self._pause(failures, err)
            except Exception as err:  # the API server unreachable, a broken stream
                failures += 1
                self._pause(failures, err)

    def _unserved(self) -> None:
        """The listing was 404: the API server has no such resource (an optional kind whose
        CRDs are not installed). Nothing to list, so the watch counts as synced and listed
        (readiness does not wait for it); the apps that need it say so; it is tried again
        every few seconds, so installing the CRDs later is noticed."""
        if self.store.is_served(self.kind):
            log.info(
                "%s are not served by the API server (no CRD): looking again every %ss",
                self._what,
                RETRY_AFTER_REFUSAL,
            )
        self.store.served(self.kind, False)
        self.store.refuse(self.kind, self.namespace, None)
        first = not self.synced.is_set()
        self.synced.set()
        if first:
            self.on_listed()

    def _pause(self, failures: int, err: Exception) -> None:
        delay = RETRY_DELAYS[min(failures - 1, len(RETRY_DELAYS) - 1)]
        level = logging.DEBUG if failures == 1 else logging.WARNING
        log.log(
            level,
            "watch of %s %s failed (%s); again in %ss",
            self._what,
            type(err).__name__,
            err,
            delay,
        )
        self._stop.wait(delay)

    @property
    def _what(self) -> str:
        return f"{self.kind}s in {self.namespace or 'all namespaces'}"

    def _list(self) -> str:
        """List the kind, replace what the store held of it; the listing's resourceVersion."""
        version, items = self._list_pages()
        self.store.refuse(self.kind, self.namespace, None)
        self.store.served(self.kind, True)
        listed_at = resource_version({"metadata": {"resourceVersion": version}})
        self.store.replace(self.kind, self.namespace, items, listed_at)
        if self.synced.is_set():
            self.on_relisted(self.namespace)
        self.synced.set()
        self.on_listed()
        return version

    def _list_pages(self) -> tuple[str, list[Obj]]:
        """Every item of the kind, page by page, slimmed as it comes; the resourceVersion of
        the listing (one snapshot: every page is read at the first one's version)."""
        while True:
            try:
                return self._read_pages()
            except ApiError as err:
                if err.status != 410:
                    raise
                # The continue token expired (the listing took longer than etcd keeps its
                # snapshot): a fresh listing, from the first page.
                log.info("listing %s took too long (%s): listing again", self._what, err)

    def _read_pages(self) -> tuple[str, list[Obj]]:
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = self.kube.list_raw(
                self.kind,
                self.namespace,
                self.label_selector,
                limit=LIST_PAGE_SIZE,
                continue_from=token,
            )
            self.on_answer()
            meta = page.get("metadata") or {}
            items += [
                slim(self.kind, {**item, "kind": self.kind}) for item in page.get("items") or []
            ]
            token = meta.get("continue") or None
            if token is None:
                return str(meta.get("resourceVersion") or ""), items

    def _watch_until_expired(self, version: str) -> None:
        """Follow the watch, resumed across the API server's timeouts, until the
        resourceVersion is too old (410 Gone): then the caller lists again."""
        while not self._stop.is_set():
            for event in self._events(version):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return
                    raise ApiError(
                        int(obj.get("code") or 500), str(obj.get("reason")), str(obj.get("message"))
                    )
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                obj = {**obj, "kind": self.kind}
                if kind == "DELETED":
                    self.store.remove(self.kind, obj)
                else:
                    self.store.put(self.kind, obj)
                self.on_event(self.kind, str(kind), obj)

    def _events(self, version: str) -> Iterator[Obj]:
        stream = self.kube.watch_lines(
            self.kind,
            self.namespace,
            {
                "labelSelector": self.label_selector,
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.watch_seconds),
            },
            # One silent for longer than the API server's timeout is dead.
            read_timeout=self.watch_seconds + 3.0,
        )
        self.on_answer()  # the watch is open: the API server answers
        for line in stream:
            yield json.loads(line)


def wait_synced(informers: list[Informer], timeout: float | None = None) -> bool:
    """Wait until every informer has its first listing in the store."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for informer in informers:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not informer.synced.wait(left):
            return False
    return True
