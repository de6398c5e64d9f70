"""kubectl-bluegreen without a cluster: rendering, decisions, patches and error messages."""

from __future__ import annotations

import json
import queue
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3

from bluegreen.plugin import cli, client, view
from bluegreen.plugin.view import PluginError

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
TEMPLATE_V1: dict[str, Any] = {
    "metadata": {"labels": {"app.kubernetes.io/name": "hello"}},
    "spec": {"containers": [{"name": "hello", "image": "hello:1.0.0"}]},
}
TEMPLATE_V2: dict[str, Any] = {"spec": {"containers": [{"name": "hello", "image": "hello:2.0.0"}]}}


def app(
    status: dict[str, Any] | None = None,
    *,
    generation: int = 2,
    promote: bool = False,
    name: str = "hello",
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenApp",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": generation,
            "creationTimestamp": "2025-06-01T11:00:00Z",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {"replicas": 2, "promote": promote, "template": TEMPLATE_V2},
    }
    if status is not None:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


def deployment(
    color: str, revision: str | None, template: dict[str, Any] | None, *, ready: int = 2
) -> dict[str, Any]:
    labels = {"bluegreen.dev/app": "hello", "bluegreen.dev/color": color}
    if revision is not None:
        labels["bluegreen.dev/revision"] = revision
    annotations = {}
    if template is not None:
        annotations["bluegreen.dev/pod-template"] = json.dumps(template, sort_keys=True)
    image = (template or TEMPLATE_V1)["spec"]["containers"][0]["image"]
    return {
        "metadata": {"name": f"hello-{color}", "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "hello", "image": image}]}},
        },
        "status": {"readyReplicas": ready} if ready else {},
    }


ACTIVE_BLUE = {"activeColor": "blue", "activeRevision": "aaaa111111"}
PREVIEW_GREEN = {"previewColor": "green", "previewRevision": "bbbb222222"}
PREVIOUS_V2 = {"previousRevision": "bbbb222222"}
BLUE_V1 = deployment("blue", "aaaa111111", TEMPLATE_V1)
GREEN_V2 = deployment("green", "bbbb222222", TEMPLATE_V2)
AVAILABLE = {
    "type": "Available",
    "status": "True",
    "reason": "ActiveReady",
    "message": "2/2 pods ready",
    "lastTransitionTime": "2025-06-01T11:01:00Z",
}


# --- status ---------------------------------------------------------------------------------


def test_render_status_of_a_waiting_preview_in_full() -> None:
    paused = app(
        {
            "phase": "Paused",
            "message": "Preview green is ready; waiting for spec.promote",
            **ACTIVE_BLUE,
            **PREVIEW_GREEN,
            "conditions": [AVAILABLE],
        }
    )
    assert view.render_status(paused, {"blue": BLUE_V1, "green": GREEN_V2}) == (
        "Name:       hello\n"
        "Namespace:  default\n"
        "Phase:      Paused\n"
        "Message:    Preview green is ready; waiting for spec.promote\n"
        "Promote:    false\n"
        "Observed:   generation 2 (current)\n"
        "Active:     blue (revision aaaa111111)\n"
        "Preview:    green (revision bbbb222222)\n"
        "Next:       kubectl bluegreen promote hello   (or set promote: true in Git)\n"
        "Colors:\n"
        "  COLOR   ROLE      REVISION     READY   IMAGE\n"
        "  blue    active    aaaa111111   2/2     hello:1.0.0\n"
        "  green   preview   bbbb222222   2/2     hello:2.0.0\n"
        "Conditions:\n"
        "  TYPE        STATUS   REASON        SINCE                  MESSAGE\n"
        "  Available   True     ActiveReady   2025-06-01T11:01:00Z   2/2 pods ready"
    )


def test_render_status_shows_each_check_and_what_to_do_after_a_failure() -> None:
    failed = app(
        {
            "phase": "Degraded",
            "message": "check smoke failed on the preview of revision bbbb222222: HTTP 500",
            **ACTIVE_BLUE,
            **PREVIEW_GREEN,
            "checks": [
                {
                    "name": "smoke",
                    "stage": "preview",
                    "revision": "bbbb222222",
                    "state": "Failed",
                    "successes": 0,
                    "failures": 3,
                    "message": "HTTP 500: failing v2 (expected 200)",
                },
                {
                    "name": "db",
                    "stage": "preview",
                    "revision": "bbbb222222",
                    "state": "Passed",
                    "successes": 1,
                    "failures": 0,
                    "message": "completed",
                },
            ],
            "conditions": [
                {
                    "type": "Degraded",
                    "status": "True",
                    "reason": "CheckFailed",
                    "message": "x",
                    "lastTransitionTime": "2025-06-01T11:01:00Z",
                }
            ],
        },
        promote=True,
    )
    out = view.render_status(failed, {"blue": BLUE_V1, "green": GREEN_V2})
    assert (
        "Checks:\n"
        "  CHECK   STAGE     REVISION     STATE    OK   FAILED   LAST ANSWER\n"
        "  smoke   preview   bbbb222222   Failed   0    3        "
        "HTTP 500: failing v2 (expected 200)\n"
        "  db      preview   bbbb222222   Passed   1    0        completed\n"
    ) in out
    assert (
        "Next:       fix the template, or kubectl bluegreen retry hello (spec.retryChecks: 1) "
        "to run the checks again"
    ) in out


@pytest.mark.parametrize(
    "obj, deployments, expected_lines, absent",
    [
        pytest.param(
            app({"phase": "Healthy", "message": "blue serves 2/2", **ACTIVE_BLUE}, promote=True),
            {"blue": BLUE_V1, "green": None},
            [
                "Phase:      Healthy",
                "Message:    blue serves 2/2",
                "Promote:    true",
                "Preview:    <none>",
                "  green   -        <none>       -       (no Deployment)",
                "Conditions:\n  <none>",
            ],
            ["Next:"],
            id="healthy",
        ),
        pytest.param(
            app(
                {
                    "phase": "Progressing",
                    "message": "Waiting for green: 1/2 pods ready",
                    **ACTIVE_BLUE,
                    **PREVIEW_GREEN,
                }
            ),
            {"blue": BLUE_V1, "green": deployment("green", "bbbb222222", TEMPLATE_V2, ready=1)},
            [
                "Phase:      Progressing",
                "Message:    Waiting for green: 1/2 pods ready",
                "  green   preview   bbbb222222   1/2     hello:2.0.0",
            ],
            ["Next:"],
            id="progressing",
        ),
        pytest.param(
            app({"phase": "Degraded", "message": "green: ImagePullBackOff", **ACTIVE_BLUE}),
            {"blue": BLUE_V1, "green": deployment("green", "cccc333333", TEMPLATE_V2, ready=0)},
            [
                "Phase:      Degraded",
                "Message:    green: ImagePullBackOff",
                "  green   previous   cccc333333   0/2     hello:2.0.0",
            ],
            ["Next:"],
            id="degraded",
        ),
        pytest.param(
            app({"phase": "Paused", **ACTIVE_BLUE, **PREVIEW_GREEN}, promote=True),
            {"blue": BLUE_V1, "green": GREEN_V2},
            ["Phase:      Paused", "Promote:    true"],
            ["Next:"],
            id="paused-but-promote-already-set",
        ),
        pytest.param(
            {**app({"phase": "Healthy", **ACTIVE_BLUE}), "status": {"phase": "Healthy"}},
            {"blue": BLUE_V1, "green": None},
            ["Observed:   none yet (generation 2 waits for the operator)"],
            [],
            id="observed-generation-missing",
        ),
        pytest.param(
            app(None),
            {"blue": None, "green": None},
            [
                "Phase:      <none>",
                "Message:    <none>",
                "Active:     <none>",
                "Observed:   none yet (generation 2 waits for the operator)",
            ],
            [],
            id="no-status-yet",
        ),
        pytest.param(
            {
                **app({"phase": "Healthy"}, generation=3),
                "metadata": {"name": "hello", "generation": 4},
            },
            {"blue": None, "green": None},
            ["Observed:   generation 3 of 4 (the operator has not caught up yet)"],
            [],
            id="stale-status",
        ),
        pytest.param(
            app({"phase": "Healthy", **ACTIVE_BLUE}),
            {"blue": BLUE_V1, "green": deployment("green", "aaaa111111", TEMPLATE_V1, ready=0)},
            ["  green   idle     aaaa111111   0/2     hello:1.0.0"],
            [],
            id="idle-color-holding-the-active-revision",
        ),
    ],
)
def test_render_status(
    obj: dict[str, Any],
    deployments: dict[str, Any],
    expected_lines: list[str],
    absent: list[str],
) -> None:
    text = view.render_status(obj, deployments)  # type: ignore[arg-type]
    for line in expected_lines:
        assert line in text
    for line in absent:
        assert line not in text


# --- list -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "apps, namespace, expected",
    [
        pytest.param(
            [
                app({"phase": "Paused", **ACTIVE_BLUE, **PREVIEW_GREEN}, name="web"),
                app({"phase": "Healthy", **ACTIVE_BLUE}, promote=True, name="api"),
            ],
            "default",
            "NAME   ACTIVE   PREVIEW   PHASE     PROMOTE   AGE\n"
            "api    blue     <none>    Healthy   true      60m\n"
            "web    blue     green     Paused    false     60m",
            id="one-namespace-sorted",
        ),
        pytest.param(
            [
                app({"phase": "Degraded", **ACTIVE_BLUE}, namespace="shop"),
                app(None, namespace="blog"),
            ],
            None,
            "NAMESPACE   NAME    ACTIVE   PREVIEW   PHASE      PROMOTE   AGE\n"
            "blog        hello   <none>   <none>    <none>     false     60m\n"
            "shop        hello   blue     <none>    Degraded   false     60m",
            id="all-namespaces",
        ),
        pytest.param([], "team", 'No BlueGreenApps found in namespace "team".', id="empty"),
        pytest.param([], None, "No BlueGreenApps found in any namespace.", id="empty-all"),
    ],
)
def test_render_list(apps: list[dict[str, Any]], namespace: str | None, expected: str) -> None:
    assert view.render_list(apps, NOW, namespace=namespace) == expected


@pytest.mark.parametrize(
    "seconds, expected",
    [
        pytest.param(-3, "0s", id="clock-skew"),
        pytest.param(45, "45s", id="seconds"),
        pytest.param(119, "119s", id="under-two-minutes"),
        pytest.param(200, "3m20s", id="minutes-seconds"),
        pytest.param(600, "10m", id="minutes"),
        pytest.param(4 * 3600 + 5 * 60, "4h5m", id="hours-minutes"),
        pytest.param(20 * 3600, "20h", id="hours"),
        pytest.param(3 * 86400 + 2 * 3600, "3d2h", id="days-hours"),
        pytest.param(40 * 86400, "40d", id="days"),
        pytest.param(3 * 365 * 86400, "3y", id="years"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert view.human_duration(seconds) == expected


# --- rollback -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, deployments, expected",
    [
        pytest.param(
            {
                "phase": "Healthy",
                "activeColor": "green",
                "activeRevision": "bbbb222222",
                "previousRevision": "aaaa111111",
            },
            {"blue": BLUE_V1, "green": GREEN_V2},
            ("blue", "aaaa111111", TEMPLATE_V1),
            id="previous-color-still-holds-its-template",
        ),
        pytest.param(
            {"phase": "Healthy", **ACTIVE_BLUE, **PREVIOUS_V2},
            {"blue": BLUE_V1, "green": deployment("green", "bbbb222222", TEMPLATE_V2, ready=0)},
            ("green", "bbbb222222", TEMPLATE_V2),
            id="scaled-down-previous-color",
        ),
    ],
)
def test_rollback_target(
    status: dict[str, Any], deployments: dict[str, Any], expected: tuple[str, str, Any]
) -> None:
    target = view.rollback_target(app(status), deployments)  # type: ignore[arg-type]
    assert (target.color, target.revision, target.template) == expected


@pytest.mark.parametrize(
    "status, deployments, reason",
    [
        pytest.param(
            {"phase": "Progressing"},
            {"blue": None, "green": None},
            "no color is active yet",
            id="nothing-active",
        ),
        pytest.param(
            {"phase": "Paused", **ACTIVE_BLUE, **PREVIEW_GREEN},
            {"blue": BLUE_V1, "green": GREEN_V2},
            "green holds a waiting preview and prod still serves revision aaaa111111",
            id="preview-waiting",
        ),
        pytest.param(
            {"phase": "Healthy", **ACTIVE_BLUE},
            {"blue": BLUE_V1, "green": None},
            "no earlier revision served prod",
            id="never-switched",
        ),
        pytest.param(
            {"phase": "Healthy", **ACTIVE_BLUE},
            {"blue": BLUE_V1, "green": GREEN_V2},
            "no earlier revision served prod",
            id="abandoned-preview-never-served",
        ),
        pytest.param(
            {"phase": "Healthy", **ACTIVE_BLUE, **PREVIOUS_V2},
            {"blue": BLUE_V1, "green": None},
            "Deployment hello-green no longer holds revision bbbb222222",
            id="other-color-deleted",
        ),
        pytest.param(
            {"phase": "Healthy", **ACTIVE_BLUE, **PREVIOUS_V2},
            {"blue": BLUE_V1, "green": deployment("green", "cccc333333", TEMPLATE_V1)},
            "Deployment hello-green no longer holds revision bbbb222222",
            id="other-color-holds-another-revision",
        ),
        pytest.param(
            {"phase": "Healthy", **ACTIVE_BLUE, **PREVIOUS_V2},
            {"blue": BLUE_V1, "green": deployment("green", "bbbb222222", None)},
            "no annotation bluegreen.dev/pod-template of Deployment hello-green",
            id="no-template-annotation",
        ),
    ],
)
def test_rollback_target_unknown(
    status: dict[str, Any], deployments: dict[str, Any], reason: str
) -> None:
    with pytest.raises(PluginError) as raised:
        view.rollback_target(app(status), deployments)  # type: ignore[arg-type]
    assert str(raised.value).startswith('no previous revision is known for bluegreenapp "hello"')
    assert reason in str(raised.value)


def test_rollback_target_refuses_a_corrupt_annotation() -> None:
    green = deployment("green", "bbbb222222", TEMPLATE_V2)
    green["metadata"]["annotations"]["bluegreen.dev/pod-template"] = "{not json"
    with pytest.raises(PluginError, match="is not JSON"):
        view.rollback_target(
            app({"phase": "Healthy", **ACTIVE_BLUE, **PREVIOUS_V2}),
            {"blue": BLUE_V1, "green": green},
        )


@pytest.mark.parametrize(
    "promote, expected_tail",
    [
        pytest.param(False, [], id="template-only"),
        pytest.param(
            True, [{"op": "add", "path": "/spec/promote", "value": True}], id="with-promote"
        ),
    ],
)
def test_rollback_patch_replaces_the_whole_template(
    promote: bool, expected_tail: list[dict[str, Any]]
) -> None:
    assert view.rollback_patch(app(None, generation=7), TEMPLATE_V1, promote=promote) == [
        {"op": "test", "path": "/metadata/generation", "value": 7},
        {"op": "replace", "path": "/spec/template", "value": TEMPLATE_V1},
        *expected_tail,
    ]


def test_promote_patch_is_a_merge_patch_of_one_field() -> None:
    assert view.promote_patch() == {"spec": {"promote": True}}


@pytest.mark.parametrize(
    "obj, expected",
    [
        pytest.param(
            app({**ACTIVE_BLUE, **PREVIEW_GREEN}),
            'bluegreenapp "hello" promoted: prod traffic moves to green (revision bbbb222222) '
            "as soon as it is fully ready",
            id="preview-waiting",
        ),
        pytest.param(
            app(ACTIVE_BLUE),
            'bluegreenapp "hello" promoted: no preview is waiting, so every new revision goes '
            "live as soon as it is fully ready",
            id="nothing-waiting",
        ),
    ],
)
def test_promote_message(obj: dict[str, Any], expected: str) -> None:
    assert view.promote_message(obj) == expected


# --- GitOps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, annotations, expected",
    [
        pytest.param({}, {}, None, id="plain"),
        pytest.param(
            {"app.kubernetes.io/instance": "hello-prod"},
            {},
            "label app.kubernetes.io/instance=hello-prod",
            id="argocd-label",
        ),
        pytest.param(
            {},
            {"argocd.argoproj.io/tracking-id": "hello:bluegreen.dev/BlueGreenApp:default/hello"},
            "annotation argocd.argoproj.io/tracking-id",
            id="argocd-annotation",
        ),
        pytest.param(
            {"kustomize.toolkit.fluxcd.io/name": "apps"},
            {},
            "label kustomize.toolkit.fluxcd.io/name=apps",
            id="flux-kustomization",
        ),
        pytest.param({"app.kubernetes.io/name": "hello"}, {}, None, id="unrelated-label"),
    ],
)
def test_gitops_marker(
    labels: dict[str, str], annotations: dict[str, str], expected: str | None
) -> None:
    assert view.gitops_marker(app(None, labels=labels, annotations=annotations)) == expected


def test_gitops_refusal_says_what_to_commit_and_what_force_does() -> None:
    managed = app(None, labels={"app.kubernetes.io/instance": "hello"})
    assert view.gitops_refusal(managed, "promote") == (
        'bluegreenapp "hello" is managed by GitOps (label app.kubernetes.io/instance=hello): '
        "commit promote: true to Git instead, or repeat with --force: prod switches now and "
        "stays switched, but self-heal puts Git's spec.promote back within seconds (without "
        "self-heal the app shows OutOfSync)"
    )
    assert view.gitops_refusal(managed, "rollback") == (
        'bluegreenapp "hello" is managed by GitOps (label app.kubernetes.io/instance=hello): '
        "commit a revert of the template change to Git instead, or repeat with --force: "
        "self-heal puts Git's template back within seconds, which rolls the newer revision "
        "out again (without self-heal the app shows OutOfSync)"
    )
    assert view.gitops_refusal(app(None), "promote") is None


def test_docs_show_the_gitops_messages_as_the_plugin_prints_them() -> None:
    tracked = app(None, annotations={"argocd.argoproj.io/tracking-id": "hello:x"})
    doc = (Path(__file__).resolve().parents[2] / "docs" / "argocd.md").read_text()
    assert f"\nerror: {view.gitops_refusal(tracked, 'promote')}\n" in doc
    assert f"\n{view.gitops_warning(tracked, 'promote')}\n" in doc


def test_gitops_warning_says_what_a_forced_change_does() -> None:
    managed = app(None, annotations={"argocd.argoproj.io/tracking-id": "hello:x"})
    assert view.gitops_warning(managed, "promote") == (
        'warning: bluegreenapp "hello" is managed by GitOps '
        "(annotation argocd.argoproj.io/tracking-id): prod switches now and stays switched, "
        "but self-heal puts Git's spec.promote back within seconds (without self-heal the app "
        "shows OutOfSync); commit promote: true to Git to match"
    )
    assert view.gitops_warning(app(None), "rollback") is None


# --- errors ---------------------------------------------------------------------------------

NOT_FOUND_BODY = json.dumps(
    {
        "kind": "Status",
        "status": "Failure",
        "message": 'bluegreenapps.bluegreen.dev "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "bluegreen.dev", "kind": "bluegreenapps"},
        "code": 404,
    }
)
NO_API_BODY = json.dumps(
    {
        "kind": "Status",
        "message": "the server could not find the requested resource",
        "reason": "NotFound",
        "details": {},
        "code": 404,
    }
)


@pytest.mark.parametrize(
    "status, reason, body, expected",
    [
        pytest.param(
            404,
            "Not Found",
            NOT_FOUND_BODY,
            'bluegreenapp "nope" not found in namespace "team"',
            id="app-missing",
        ),
        pytest.param(
            404,
            "Not Found",
            NO_API_BODY,
            "the BlueGreenApp API (bluegreen.dev/v1alpha1) is not installed in this cluster: "
            "apply the CRD first",
            id="crd-missing",
        ),
        pytest.param(
            401,
            "Unauthorized",
            "",
            "unauthorized: the API server refused the credentials of your kubeconfig",
            id="unauthorized",
        ),
        pytest.param(
            403,
            "Forbidden",
            json.dumps({"message": 'user "dev" cannot patch bluegreenapps'}),
            'forbidden: user "dev" cannot patch bluegreenapps',
            id="forbidden",
        ),
        pytest.param(
            422,
            "Unprocessable Entity",
            json.dumps({"message": "the test operation failed"}),
            "could not change bluegreenapp nope: the API server answered 422 "
            "Unprocessable Entity: the test operation failed",
            id="other",
        ),
    ],
)
def test_describe_api_error(status: int, reason: str, body: str, expected: str) -> None:
    described = view.describe_api_error(
        status, reason, body, what="change bluegreenapp nope", namespace="team"
    )
    assert described == expected


@pytest.mark.parametrize(
    "error, expected",
    [
        pytest.param(
            urllib3.exceptions.MaxRetryError(
                None,  # type: ignore[arg-type]
                "/apis",
                urllib3.exceptions.NewConnectionError(
                    urllib3.connection.HTTPSConnection("127.0.0.1", 6443),
                    "Failed to establish a new connection: [Errno 111] Connection refused",
                ),
            ),
            "cannot reach the Kubernetes API at https://127.0.0.1:6443: Connection refused",
            id="refused",
        ),
        pytest.param(
            urllib3.exceptions.MaxRetryError(
                None,  # type: ignore[arg-type]
                "/apis",
                urllib3.exceptions.ConnectTimeoutError("timed out"),
            ),
            "cannot reach the Kubernetes API at https://127.0.0.1:6443: no answer within 3s",
            id="connect-timeout",
        ),
        pytest.param(
            urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"),  # type: ignore[arg-type]
            "cannot reach the Kubernetes API at https://127.0.0.1:6443: no answer within 3s",
            id="read-timeout",
        ),
    ],
)
def test_describe_connection_error(error: urllib3.exceptions.HTTPError, expected: str) -> None:
    assert view.describe_connection_error(error, "https://127.0.0.1:6443", 3.0) == expected


def test_a_watch_error_ends_the_wait() -> None:
    events: queue.Queue[object] = queue.Queue()
    events.put("changed")
    events.put(PluginError("cannot reach the Kubernetes API"))
    with pytest.raises(PluginError, match="cannot reach"):
        cli.wait_for_change(events)


# --- the command line, up to the first request ----------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        pytest.param(["list"], {"namespace": None, "all_namespaces": False}, id="defaults"),
        pytest.param(["-n", "team", "list"], {"namespace": "team"}, id="namespace-before"),
        pytest.param(
            ["list", "-n", "team", "-A"], {"namespace": "team", "all_namespaces": True}, id="after"
        ),
        pytest.param(
            ["--context", "prod", "rollback", "hello", "--promote"],
            {"context": "prod", "name": "hello", "promote": True, "request_timeout": 10.0},
            id="rollback",
        ),
        pytest.param(["status", "hello", "-w"], {"name": "hello", "watch": True}, id="watch"),
        pytest.param(["retry", "hello", "--force"], {"name": "hello", "force": True}, id="retry"),
        pytest.param(
            ["dashboard"],
            {"port": 3110, "all_namespaces": False, "open": False},
            id="dashboard-defaults",
        ),
        pytest.param(
            ["dashboard", "-A", "--port", "0", "-n", "x"],
            {"port": 0, "all_namespaces": True, "namespace": "x"},
            id="dashboard",
        ),
    ],
)
def test_parser(argv: list[str], expected: dict[str, Any]) -> None:
    parsed = vars(cli.build_parser().parse_args(argv))
    assert {key: parsed[key] for key in expected} == expected


def closed_port() -> int:
    """A local port nobody listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def kubeconfig_for(server: str, path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "team"}}
                ],
                "current-context": "x",
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["list"], id="list"),
        pytest.param(["status", "hello"], id="status"),
        pytest.param(["promote", "hello"], id="promote"),
        pytest.param(["rollback", "hello"], id="rollback"),
        pytest.param(["retry", "hello"], id="retry"),
    ],
)
def test_unreachable_cluster_is_one_line_and_exit_1(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig_for(server, tmp_path / "config")))
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == f"error: cannot reach the Kubernetes API at {server}: Connection refused\n"
    )


def test_missing_kubeconfig_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert cli.main(["list"]) == 1
    assert capsys.readouterr().err == (
        f"error: no kubeconfig found at {missing}: set KUBECONFIG or pass --kubeconfig\n"
    )


def test_unknown_context_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = kubeconfig_for("http://127.0.0.1:1", tmp_path / "config")
    assert cli.main(["--kubeconfig", str(kubeconfig), "--context", "nope", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot use the kubeconfig at {kubeconfig}: ")
    assert "nope" in err
    assert err.count("\n") == 1


def test_context_namespace_is_the_default_namespace(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for("http://127.0.0.1:1", tmp_path / "config")
    assert client.context_namespace(str(kubeconfig), None) == "team"
    assert client.context_namespace(str(kubeconfig), "x") == "team"


@pytest.mark.parametrize(
    ("spec_promote", "flag", "moves"),
    [
        pytest.param(False, False, False, id="waits-as-preview"),
        pytest.param(False, True, True, id="flag-promotes"),
        pytest.param(True, False, True, id="app-promotes-already"),
    ],
)
def test_rollback_says_whether_prod_follows(spec_promote: bool, flag: bool, moves: bool) -> None:
    rolled = {"spec": {"promote": spec_promote}}
    assert view.moves_prod(rolled, flag) is moves
