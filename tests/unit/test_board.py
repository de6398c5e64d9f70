"""The dashboard without a cluster: the page's model (board.py), the actions' rules
(actions.py) and the web server's doors and stream (dashboard.py), served for real on a
loopback port. Only the plugin's client is stood in for, by a small recorder."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bluegreen.plugin import actions, board, dashboard
from bluegreen.plugin.view import PluginError

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
V1 = {"spec": {"containers": [{"name": "hello", "image": "hello:1.0.0"}]}}
V2 = {"spec": {"containers": [{"name": "hello", "image": "hello:2.0.0"}]}}
Obj = dict[str, Any]


def make_app(status: Obj | None = None, *, labels: Obj | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenApp",
        "metadata": {"name": "hello", "namespace": "shop", "generation": 3, "labels": labels or {}},
        "spec": {"replicas": 2, "template": V2, **spec},
        "status": {"observedGeneration": 3, **(status or {})},
    }


def make_deployment(color: str, revision: str, template: Obj, ready: int = 2) -> Obj:
    return {
        "metadata": {
            "name": f"hello-{color}",
            "namespace": "shop",
            "labels": {"bluegreen.dev/app": "hello", "bluegreen.dev/revision": revision},
            "annotations": {"bluegreen.dev/pod-template": json.dumps(template)},
        },
        "spec": {"replicas": 2, "template": template},
        "status": {"readyReplicas": ready},
    }


def make_event(reason: str, when: str, message: str = "", type_: str = "Normal") -> Obj:
    return {
        "metadata": {"name": f"hello.{reason}{when}", "namespace": "shop"},
        "involvedObject": {"kind": "BlueGreenApp", "name": "hello", "namespace": "shop"},
        "type": type_,
        "reason": reason,
        "message": message,
        "lastTimestamp": when,
        "count": 1,
    }


GREEN_LIVE = {
    "phase": "Healthy",
    "activeColor": "green",
    "activeRevision": "v2",
    "previousRevision": "v1",
    "lastSwitchTime": "2025-06-01T11:59:50Z",
}
DEPLOYMENTS = {
    ("shop", "hello-blue"): make_deployment("blue", "v1", V1),
    ("shop", "hello-green"): make_deployment("green", "v2", V2, ready=1),
}


# --- the page's model ----------------------------------------------------------------------


def test_a_card_shows_colors_pods_and_the_rollback_window() -> None:
    app = make_app(GREEN_LIVE, scaleDownDelaySeconds=30)

    (card,) = board.page([app], DEPLOYMENTS, [], now=NOW)

    assert card["phase"] == "Healthy"
    assert card["active"] == {"color": "green", "revision": "v2"}
    assert card["preview"] is None
    assert [(c["color"], c["role"], c["ready"], c["desired"]) for c in card["colors"]] == [
        ("blue", "previous", 2, 2),
        ("green", "active", 1, 2),
    ]
    assert card["rollback"] == {
        "possible": True,
        "revision": "v1",
        "color": "blue",
        "instantUntil": "2025-06-01T12:00:20Z",
        "instantFor": 20,
    }


def test_the_window_uses_the_default_delay_and_ends_at_zero() -> None:
    (card,) = board.page([make_app(GREEN_LIVE)], DEPLOYMENTS, [], now=NOW.replace(minute=5))
    assert card["rollback"]["instantUntil"] == "2025-06-01T12:00:20Z"  # 30 s, the default
    assert card["rollback"]["instantFor"] == 0


def test_no_rollback_while_a_preview_waits_says_why() -> None:
    waiting = make_app(
        {"phase": "Paused", "activeColor": "blue", "activeRevision": "v1", "previewColor": "green"}
    )
    (card,) = board.page([waiting], DEPLOYMENTS, [], now=NOW)
    assert card["rollback"]["possible"] is False
    assert "holds a waiting preview" in card["rollback"]["reason"]
    assert card["preview"] == {"color": "green", "revision": None}


def test_events_are_newest_first_and_switches_make_the_history() -> None:
    events = [
        make_event("Switched", "2025-06-01T11:00:00Z", "blue to green"),
        make_event("Created", "2025-06-01T10:00:00Z"),
        make_event("RolledBack", "2025-06-01T11:30:00Z", "back to blue", "Warning"),
        {**make_event("Switched", "2025-06-01T11:40:00Z"), "involvedObject": {"name": "other"}},
    ]
    (card,) = board.page([make_app(GREEN_LIVE)], DEPLOYMENTS, events, now=NOW)
    assert [e["reason"] for e in card["events"]] == ["RolledBack", "Switched", "Created"]
    assert [(s["reason"], s["message"]) for s in card["switches"]] == [
        ("RolledBack", "back to blue"),
        ("Switched", "blue to green"),
    ]


def test_apps_are_ordered_and_their_missing_colors_are_absent() -> None:
    other = make_app()
    other["metadata"] = {**other["metadata"], "name": "api", "namespace": "a"}
    cards = board.page([make_app(GREEN_LIVE), other], DEPLOYMENTS, [], now=NOW)
    assert [(c["namespace"], c["name"]) for c in cards] == [("a", "api"), ("shop", "hello")]
    assert [c["role"] for c in cards[0]["colors"]] == ["absent", "absent"]
    assert cards[0]["phase"] == "Unknown"


def test_a_gitops_marker_and_the_retry_rule_are_on_the_card() -> None:
    app = make_app(GREEN_LIVE, labels={"app.kubernetes.io/instance": "hello"})
    (card,) = board.page([app], DEPLOYMENTS, [], now=NOW)
    assert card["gitops"] == "label app.kubernetes.io/instance=hello"
    assert card["retryRefusal"] == 'bluegreenapp "hello" declares no checks to run again'


# --- the actions' rules ----------------------------------------------------------------------


class Recorder:
    """The plugin client's three calls the actions make; patches are recorded."""

    def __init__(self, app: Obj, refuse: str | None = None) -> None:
        self.app = app
        self.refuse = refuse
        self.patches: list[tuple[Any, str]] = []

    def get_app(self, namespace: str, name: str) -> Obj:
        return self.app

    def get_deployments(self, namespace: str, name: str) -> dict[str, Obj | None]:
        return {
            "blue": DEPLOYMENTS[("shop", "hello-blue")],
            "green": DEPLOYMENTS[("shop", "hello-green")],
        }

    def patch_app(self, namespace: str, name: str, patch: Any, *, content_type: str) -> Obj:
        if self.refuse:
            raise PluginError(self.refuse)
        self.patches.append((patch, content_type))
        return self.app


GITOPS = {"app.kubernetes.io/instance": "hello"}


@pytest.mark.parametrize("action", actions.ACTIONS)
def test_a_gitops_app_is_refused_by_the_rule_unless_forced(action: str) -> None:
    kube = Recorder(make_app(GREEN_LIVE, labels=GITOPS, checks=[{"name": "smoke"}]))
    run = getattr(actions, action)

    with pytest.raises(actions.Refused, match="is managed by GitOps"):
        run(kube, "shop", "hello", force=False)
    assert kube.patches == []

    done = run(kube, "shop", "hello", force=True)
    assert len(kube.patches) == 1
    assert done.warning is not None and done.warning.startswith("warning: bluegreenapp")


def test_the_api_servers_refusal_is_not_the_rules() -> None:
    kube = Recorder(make_app(GREEN_LIVE), refuse="forbidden: user x cannot patch")
    with pytest.raises(PluginError) as refused:
        actions.promote(kube, "shop", "hello", force=False)  # type: ignore[arg-type]
    assert not isinstance(refused.value, actions.Refused)


def test_a_rollback_without_a_target_is_refused_by_the_rule() -> None:
    kube = Recorder(make_app({"phase": "Paused", "activeColor": "blue", "previewColor": "green"}))
    with pytest.raises(actions.Refused, match="no previous revision is known"):
        actions.rollback(kube, "shop", "hello", force=False)  # type: ignore[arg-type]
    assert kube.patches == []


def test_a_retry_raises_retry_checks_by_one_for_the_generation_it_saw() -> None:
    kube = Recorder(make_app(GREEN_LIVE, checks=[{"name": "smoke"}], retryChecks=4))
    actions.retry(kube, "shop", "hello", force=False)  # type: ignore[arg-type]
    assert kube.patches == [
        (
            [
                {"op": "test", "path": "/metadata/generation", "value": 3},
                {"op": "add", "path": "/spec/retryChecks", "value": 5},
            ],
            "application/json-patch+json",
        )
    ]


def test_a_retry_without_checks_is_refused() -> None:
    kube = Recorder(make_app(GREEN_LIVE))
    with pytest.raises(actions.Refused, match="declares no checks"):
        actions.retry(kube, "shop", "hello", force=False)  # type: ignore[arg-type]


# --- the server ------------------------------------------------------------------------------


@pytest.fixture
def site() -> Iterator[dashboard.Site]:
    follower = dashboard.Follower("shop")
    for kind in ("apps", "deployments", "events"):
        follower.replace(kind, [])
    follower.replace("apps", [make_app(GREEN_LIVE, labels=GITOPS)])
    server = dashboard.Server((dashboard.HOST, 0), dashboard.Handler)
    kube = Recorder(make_app(GREEN_LIVE, labels=GITOPS))
    site = dashboard.Site(kube, follower, "secret", server.server_address[1])  # type: ignore[arg-type]
    server.RequestHandlerClass = type("H", (dashboard.Handler,), {"site": site})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()


def request(
    site: dashboard.Site,
    method: str,
    path: str,
    *,
    host: str | None = None,
    signed_in: bool = True,
    body: Obj | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(dashboard.HOST, site.port, timeout=5)
    sent = {"Host": host or f"127.0.0.1:{site.port}", **(headers or {})}
    if signed_in:
        sent["Cookie"] = f"other=1; bluegreen-dashboard-{site.port}=secret"
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=data, headers=sent)
    answer = connection.getresponse()
    result = answer.status, dict(answer.getheaders()), answer.read()
    connection.close()
    return result


def test_the_token_url_sets_a_strict_cookie_and_drops_the_token(site: dashboard.Site) -> None:
    status, headers, _ = request(site, "GET", "/?token=secret", signed_in=False)
    assert status == 303
    assert headers["Location"] == "/"
    assert headers["Set-Cookie"] == (
        f"bluegreen-dashboard-{site.port}=secret; HttpOnly; SameSite=Strict; Path=/"
    )


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        pytest.param("/", {"signed_in": False}, 401, id="no-cookie"),
        pytest.param("/?token=wrong", {"signed_in": False}, 401, id="wrong-token"),
        pytest.param("/", {"host": "evil.example:80"}, 421, id="rebound-host"),
        pytest.param("/api/state", {"host": "evil.example:80"}, 421, id="rebound-state"),
        pytest.param("/nope", {}, 404, id="unknown"),
    ],
)
def test_only_the_signed_in_browser_on_loopback_is_served(
    site: dashboard.Site, path: str, kwargs: Any, status: int
) -> None:
    assert request(site, "GET", path, **kwargs)[0] == status


def test_the_page_and_its_assets_are_served_from_the_package(site: dashboard.Site) -> None:
    status, headers, body = request(site, "GET", "/")
    assert status == 200
    assert b'<script src="/dashboard.js" defer></script>' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for path in ("/dashboard.js", "/dashboard.css", "/favicon.svg"):
        assert request(site, "GET", path)[0] == 200


def test_the_state_is_the_page_model(site: dashboard.Site) -> None:
    status, _, body = request(site, "GET", "/api/state")
    model = json.loads(body)
    assert status == 200
    assert model["connected"] is True
    assert [a["name"] for a in model["apps"]] == ["hello"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"Origin": "http://evil.example"}, 403, id="another-origin"),
        pytest.param({"Content-Type": "text/plain"}, 415, id="a-form-post"),
    ],
)
def test_a_cross_site_post_is_refused(
    site: dashboard.Site, headers: dict[str, str], status: int
) -> None:
    assert request(site, "POST", "/api/apps/shop/hello/promote", body={}, headers=headers)[0] == (
        status
    )
    assert site.kube.patches == []  # type: ignore[attr-defined]


def test_an_action_answers_with_who_refused(site: dashboard.Site) -> None:
    path = "/api/apps/shop/hello/promote"
    origin = {"Origin": f"http://127.0.0.1:{site.port}"}
    status, _, body = request(site, "POST", path, body={"force": False}, headers=origin)
    assert (status, json.loads(body)["refusedBy"]) == (409, "plugin")

    status, _, body = request(site, "POST", path, body={"force": True}, headers=origin)
    assert status == 200
    assert json.loads(body)["message"].startswith('bluegreenapp "hello" promoted')

    site.kube.refuse = "forbidden: no"  # type: ignore[attr-defined]
    status, _, body = request(site, "POST", path, body={"force": True})
    assert (status, json.loads(body)) == (502, {"error": "forbidden: no", "refusedBy": "api"})
    other = request(site, "POST", "/api/apps/elsewhere/hello/promote", body={})
    assert other[0] == 404


def test_the_stream_sends_the_model_then_every_change(site: dashboard.Site) -> None:
    connection = http.client.HTTPConnection(dashboard.HOST, site.port, timeout=5)
    connection.request(
        "GET",
        "/api/stream",
        headers={
            "Host": f"127.0.0.1:{site.port}",
            "Cookie": f"bluegreen-dashboard-{site.port}=secret",
        },
    )
    answer = connection.getresponse()
    assert answer.getheader("Content-Type") == "text/event-stream"

    def next_state() -> Obj:
        while True:
            line = answer.fp.readline().decode()
            if line.startswith("data: "):
                state: Obj = json.loads(line[6:])
                return state

    assert next_state()["apps"][0]["phase"] == "Healthy"
    site.follower.apply("apps", "MODIFIED", make_app({**GREEN_LIVE, "phase": "Degraded"}))
    assert next_state()["apps"][0]["phase"] == "Degraded"
    site.follower.lost("apps", "cannot reach the Kubernetes API", NOW)
    lost = next_state()
    assert (lost["connected"], lost["error"]) == (False, "cannot reach the Kubernetes API")
    assert lost["disconnectedSince"] == "2025-06-01T12:00:00Z"
    connection.close()


def test_a_failed_list_is_reported_and_tried_again() -> None:
    class Refusing:
        calls = 0

        def list_followed(self, kind: str, namespace: str | None) -> tuple[list[Obj], str]:
            Refusing.calls += 1
            if Refusing.calls == 1:
                raise PluginError("cannot reach the Kubernetes API at x: Connection refused")
            stop.set()
            return [make_app(GREEN_LIVE)], "7"

        def watch_followed(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, Obj]]:
            return iter(())

    follower = dashboard.Follower("shop")
    stop = threading.Event()
    seen: list[Any] = []
    original = follower.lost
    follower.lost = lambda *a: (seen.append(a[1]), original(*a))  # type: ignore[method-assign]
    dashboard.follow(Refusing(), follower, "apps", stop)  # type: ignore[arg-type]
    assert seen == ["cannot reach the Kubernetes API at x: Connection refused"]
    assert "apps" not in follower.errors  # listed again: connected
    assert list(follower.objects["apps"]) == [("shop", "hello")]


def test_a_taken_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind((dashboard.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PluginError, match=rf"^cannot listen on 127.0.0.1:{port}: "):
            dashboard.start(None, "shop", port=port)  # type: ignore[arg-type]
