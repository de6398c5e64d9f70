"""The list-then-watch loop that feeds the store, against a scripted API: events, bookmarks,
an expired watch (410 Gone) and a refused kind.

The real API server's behaviour is proven end to end (tests/e2e); here the transport is
scripted so that each branch is taken on purpose.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bluegreen.core import names
from bluegreen.kube.client import Kube
from bluegreen.kube.errors import ApiError
from bluegreen.runtime import informer
from bluegreen.runtime.informer import Informer
from bluegreen.runtime.store import Store

Obj = dict[str, Any]
NS = "shop"


def service(name: str, rv: int) -> Obj:
    labels = names.app_labels("web")
    return {
        "metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv), "labels": labels}
    }


class ScriptedKube(Kube):
    """Listings and watch streams played from a script, one per call."""

    def __init__(self, listings: list[Obj | ApiError], watches: list[list[Obj]]) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.listings, self.watches = listings, watches
        self.watched_from: list[str] = []
        self.pages_asked: list[tuple[int | None, str | None]] = []  # (limit, continue)
        self.done = threading.Event()

    def list_raw(
        self,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        limit: int | None = None,
        continue_from: str | None = None,
    ) -> Obj:
        self.pages_asked.append((limit, continue_from))
        if not self.listings:
            self.done.set()
            threading.Event().wait(10)  # the test is over: park the thread
        answer = self.listings.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return answer

    def watch_lines(
        self, kind: str, namespace: str, query: Mapping[str, str], read_timeout: float
    ) -> Iterator[str]:
        self.watched_from.append(query["resourceVersion"])
        if not self.watches:
            self.done.set()
            threading.Event().wait(10)
        return iter([json.dumps(event) for event in self.watches.pop(0)])


def run(kube: ScriptedKube, store: Store) -> tuple[list[tuple[str, str]], list[str]]:
    events: list[tuple[str, str]] = []
    relisted: list[str] = []
    watcher = Informer(
        kube,
        store,
        "Service",
        NS,
        "selector",
        on_event=lambda kind, type_, obj: events.append((type_, obj["metadata"]["name"])),
        on_relisted=relisted.append,
    )
    watcher.start()
    assert kube.done.wait(10)
    watcher.stop()
    return events, relisted


def listing(rv: int, *items: Obj, more: str | None = None) -> Obj:
    meta = {"resourceVersion": str(rv), **({"continue": more} if more else {})}
    return {"metadata": meta, "items": list(items)}


def test_a_listing_is_read_in_pages_and_stored_slim() -> None:
    """A large kind is never one answer: pages of LIST_PAGE_SIZE, each read on from the
    last one's continue token; what is stored of each item is what planning reads."""
    store = Store()
    heavy = {**service("web", 5), "kind": "Service"}
    heavy["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    kube = ScriptedKube(
        [listing(10, heavy, more="page-2"), listing(10, service("web-preview", 6))], [[]]
    )
    run(kube, store)
    assert kube.pages_asked[:2] == [
        (informer.LIST_PAGE_SIZE, None),
        (informer.LIST_PAGE_SIZE, "page-2"),
    ]
    assert kube.watched_from[0] == "10"  # the listing's version
    held = store.get("Service", NS, "web")
    assert held is not None and "managedFields" not in held["metadata"]
    assert store.get("Service", NS, "web-preview") is not None


def test_a_listing_whose_continue_token_expired_starts_again_from_the_first_page() -> None:
    store = Store()
    expired = ApiError(410, "Expired", "The provided continue parameter is too old")
    kube = ScriptedKube(
        [
            listing(10, service("web", 5), more="page-2"),
            expired,
            listing(20, service("web", 5), more="page-2b"),
            listing(20, service("web-preview", 16)),
        ],
        [[]],
    )
    run(kube, store)
    assert kube.pages_asked[:4] == [
        (informer.LIST_PAGE_SIZE, None),
        (informer.LIST_PAGE_SIZE, "page-2"),
        (informer.LIST_PAGE_SIZE, None),  # again from the start, at once
        (informer.LIST_PAGE_SIZE, "page-2b"),
    ]
    assert kube.watched_from[0] == "20"
    assert store.get("Service", NS, "web-preview") is not None


def test_events_after_the_listing_update_the_store_and_the_watch_resumes_where_it_was() -> None:
    store = Store()
    kube = ScriptedKube(
        [listing(10, service("web", 5))],
        [
            [
                {"type": "MODIFIED", "object": service("web", 11)},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
            ],
            [{"type": "ADDED", "object": service("web-preview", 16)}],
        ],
    )
    events, relisted = run(kube, store)
    assert events == [("MODIFIED", "web"), ("ADDED", "web-preview")]
    assert kube.watched_from == ["10", "15", "16"]  # resumed, never listed again
    assert relisted == []
    held = store.get("Service", NS, "web")
    assert held is not None and held["metadata"]["resourceVersion"] == "11"


def test_an_expired_watch_lists_again_and_forgets_what_was_deleted_meanwhile() -> None:
    store = Store()
    gone = {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}
    kube = ScriptedKube(
        [
            listing(10, service("web", 5), service("web-preview", 6)),
            listing(50, service("web", 40)),
        ],
        [[gone]],
    )
    events, relisted = run(kube, store)
    assert events == []  # no event told of the deletion: the listing did
    assert relisted == [NS]  # every app of the namespace looks again
    assert store.get("Service", NS, "web-preview") is None
    held = store.get("Service", NS, "web")
    assert held is not None and held["metadata"]["resourceVersion"] == "40"
    assert kube.watched_from == ["10", "50"]


def test_a_refused_kind_is_recorded_until_it_is_granted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer, "RETRY_AFTER_REFUSAL", 0.01)
    store = Store()
    refused = ApiError(403, "Forbidden", 'services is forbidden: cannot list resource "services"')
    seen: list[str | None] = []

    class Recording(ScriptedKube):
        def list_raw(self, kind: str, namespace: str, label_selector: str, **page: Any) -> Obj:
            seen.append(store.refused("Service", NS))
            return super().list_raw(kind, namespace, label_selector, **page)

    kube = Recording([refused, listing(10, service("web", 5))], [[]])
    run(kube, store)
    assert seen[0] is None
    assert seen[1] is not None and "forbidden" in seen[1]  # recorded while refused
    assert store.refused("Service", NS) is None  # cleared once granted
    assert store.get("Service", NS, "web") is not None


def test_a_kind_the_cluster_does_not_serve_counts_as_listed_until_its_crd_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Gateway API is optional: without its CRDs the listing of HTTPRoutes is 404. The
    watch is then synced and listed (readiness does not wait for it), the store says the
    kind is not served, and once the CRDs are installed the next listing serves it."""
    monkeypatch.setattr(informer, "RETRY_AFTER_REFUSAL", 0.01)
    store = Store()
    absent = ApiError(404, "Not Found", "the server could not find the requested resource")
    seen: list[bool] = []
    listed: list[int] = []

    class Recording(ScriptedKube):
        def list_raw(self, kind: str, namespace: str, label_selector: str, **page: Any) -> Obj:
            seen.append(store.is_served("HTTPRoute"))
            return super().list_raw(kind, namespace, label_selector, **page)

    kube = Recording([absent, absent, listing(10)], [[]])
    watcher = Informer(
        kube,
        store,
        "HTTPRoute",
        NS,
        "selector",
        on_event=lambda *_: None,
        on_listed=lambda: listed.append(1),
    )
    watcher.start()
    assert watcher.synced.wait(10)
    assert kube.done.wait(10)
    watcher.stop()
    assert seen == [True, False, False]  # not served while 404, asked again
    assert store.is_served("HTTPRoute")  # served once it lists
    assert store.refused("HTTPRoute", NS) is None  # absent is not forbidden
    assert len(listed) == 2  # once for the 404 (readiness), once for the real listing
