"""`kubectl bluegreen dashboard` in a real browser (Debian's headless Chromium, driven by
Selenium) against the local control plane, the operator running where a release needs it.

The dashboard is the installed command, started as a user starts it, with a kubeconfig:
the admin's, a ServiceAccount's with read rights only, or one whose server is a loopback
relay to the API server that the test stops and starts again (what the dashboard sees of a
stopped API server: its connections reset, new ones refused), so the shared API server
itself is never stopped. With BLUEGREEN_SCREENSHOTS set, the main views are saved there
(docs/images holds the ones the README shows).
"""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium import webdriver

from bluegreen.core.revision import revision_of

from browser import (
    Dashboard,
    card,
    field,
    missing_reason,
    screenshot,
    shows,
    start_chromium,
    wait_page,
)
from driver import Driver
from incluster import DEPLOY, POLICY
from kubehelpers import KubeCluster, wait_for
from operator_process import OperatorProcess
from specs import hello, template
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

APP = "hello"
ADMISSION_POLICY = DEPLOY / "base" / "admission-policy.yaml"
READ_ONLY = (
    ("bluegreenapps.bluegreen.dev", "get,list,watch"),
    ("deployments.apps", "get,list,watch"),
    ("events", "get,list,watch"),
)

V1, V2 = revision_of(template("v1")), revision_of(template("v2"))
Opener = Callable[..., Dashboard]


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    chromium = start_chromium()
    yield chromium
    chromium.quit()


@pytest.fixture
def open_dashboard(
    browser: webdriver.Chrome,
    kube_cluster: KubeCluster,
    bluegreen_crd: None,
    namespace: str,
    request: pytest.FixtureRequest,
) -> Iterator[Opener]:
    """Start a dashboard of the test's namespace (with a kubeconfig: the admin's unless
    given) and open it in the browser through the URL it printed; stopped afterwards."""
    started: list[Dashboard] = []

    def open_it(kubeconfig: Path | None = None, *args: str) -> Dashboard:
        board = Dashboard(kubeconfig or kube_cluster.kubeconfig, *(args or ("-n", namespace)))
        started.append(board)
        browser.get(board.url)
        wait_page(
            browser,
            "return document.body.dataset.connection === 'connected'",
            what="the page to be live",
        )
        return board

    yield open_it
    report = getattr(request.node, "rep_call", None)
    for board in started:
        board.stop()
        if report is not None and report.failed:
            print(f"--- dashboard output ---\n{''.join(board.output)}")
    browser.execute_script("localStorage.clear()")


def click_action(browser: webdriver.Chrome, namespace: str, name: str, action: str) -> None:
    """Press the action's button on the app's card, then the dialog's confirming button
    (the notice of an earlier action put away first, so only this one's answer counts)."""
    browser.execute_script("document.getElementById('notice').hidden = true")
    card(browser, namespace, name).find_element(
        "css selector", f'button[data-action="{action}"]'
    ).click()
    wait_page(browser, "return document.getElementById('confirm').open", what="the dialog")
    browser.find_element("id", "confirm-ok").click()


def notice(browser: webdriver.Chrome, kind: str) -> str:
    """The text of the notice once it is of ``kind`` (done, refused)."""
    text: str = wait_page(
        browser,
        "const n = document.getElementById('notice');"
        "return !n.hidden && n.dataset.kind === arguments[0] && n.textContent;",
        kind,
        what=f"a notice of kind {kind}",
    )
    return text


def healthy_app(driver: Driver, namespace: str, name: str = APP, **spec: Any) -> None:
    driver.create_app(namespace, name, hello("v1", **spec))
    driver.wait_app(namespace, name, phase="Healthy", activeColor="blue", activeRevision=V1)


def paused_preview(driver: Driver, namespace: str, **spec: Any) -> None:
    """hello v1 live on blue, v2 waiting on green for promotion."""
    healthy_app(driver, namespace, **spec)
    driver.patch_spec(namespace, APP, {"template": template("v2")})
    driver.wait_app(namespace, APP, phase="Paused", previewColor="green", previewRevision=V2)


def pods_of(browser: webdriver.Chrome, namespace: str, name: str, color: str) -> str:
    text: str = (
        card(browser, namespace, name)
        .find_element("css selector", f'.pods[data-color="{color}"]')
        .text.strip()
    )
    return text


# --- what the page shows -----------------------------------------------------------------


def test_the_page_lists_every_app_with_its_colors_revisions_and_pods(
    operator: OperatorProcess,
    driver: Driver,
    namespace: str,
    browser: webdriver.Chrome,
    open_dashboard: Opener,
    kube_cluster: KubeCluster,
) -> None:
    healthy_app(driver, namespace)
    healthy_app(driver, namespace, "api", replicas=3)

    open_dashboard()

    wait_for(shows(browser, namespace, "api", "phase", "Healthy"), what="api Healthy")
    for name, pods in ((APP, "2/2"), ("api", "3/3")):
        assert field(browser, namespace, name, "phase") == "Healthy"
        assert field(browser, namespace, name, "live") == f"blue {V1}"
        assert field(browser, namespace, name, "preview") == "none waiting"
        assert pods_of(browser, namespace, name, "blue") == pods
        assert pods_of(browser, namespace, name, "green") == "0/0"
    names = browser.execute_script(
        "return [...document.querySelectorAll('article[data-app]')].map(a => a.dataset.app)"
    )
    assert names == [f"{namespace}/api", f"{namespace}/{APP}"]
    assert browser.find_element("id", "scope").text == f"namespace {namespace}"

    open_dashboard(None, "--all-namespaces")
    wait_for(lambda: card(browser, namespace, APP), what="the app among all namespaces")
    assert browser.find_element("id", "scope").text == "all namespaces"


def test_a_template_change_shows_the_preview_progressing_live_without_a_reload(
    operator: OperatorProcess,
    driver: Driver,
    namespace: str,
    browser: webdriver.Chrome,
    open_dashboard: Opener,
) -> None:
    """The simulated nodes make a pod ready as soon as it is scheduled. The new template's
    pods may only go to nodes labelled for this test, one per node: with one node labelled
    the preview holds at one pod of two (a state the page must show), a second lets it
    finish."""
    healthy_app(driver, namespace)
    open_dashboard()
    wait_for(shows(browser, namespace, APP, "phase", "Healthy"), what="Healthy on the page")
    # Everything the card shows from here on, in order; and a mark a reload would erase.
    browser.execute_script(
        """
        window.notReloaded = true;
        window.seen = [];
        const record = () => {
          const c = document.querySelector(`article[data-app="${arguments[0]}"]`);
          if (!c) return;
          const now = [c.dataset.phase, c.querySelector('[data-role=preview]').textContent,
                       c.querySelector('.pods[data-color=green]').textContent.trim()].join(' | ');
          if (window.seen[window.seen.length - 1] !== now) window.seen.push(now);
        };
        record();
        new MutationObserver(record).observe(document.getElementById('main'),
                                             {childList: true, subtree: true});
        """,
        f"{namespace}/{APP}",
    )

    pinned = one_pod_per_labelled_node(template("v2"), namespace)
    revision = revision_of(pinned)
    try:
        label_node("kwok-node-0", namespace)
        driver.patch_spec(namespace, APP, {"template": pinned})

        wait_for(lambda: pods_of(browser, namespace, APP, "green") == "1/2", what="green 1/2")
        assert field(browser, namespace, APP, "phase") == "Progressing"
        assert field(browser, namespace, APP, "preview") == f"green {revision}"
        screenshot(browser, "dashboard-progressing")
        label_node("kwok-node-1", namespace)
        wait_for(shows(browser, namespace, APP, "phase", "Paused"), what="Paused on the page")
    finally:
        for node in ("kwok-node-0", "kwok-node-1"):
            kubectl("label", "node", node, f"{SLOT}-")
    assert field(browser, namespace, APP, "preview") == f"green {revision}"
    assert field(browser, namespace, APP, "live") == f"blue {V1}"
    assert browser.execute_script("return window.notReloaded") is True
    seen = [" ".join(s.split()) for s in browser.execute_script("return window.seen")]
    assert seen[0] == "Healthy | none waiting | 0/0", seen
    assert f"Progressing | green {revision} | 1/2" in seen, seen
    assert seen[-1] == f"Paused | green {revision} | 2/2", seen


SLOT = "dashboard.test/slot"


def label_node(node: str, namespace: str) -> None:
    kubectl("label", "node", node, f"{SLOT}={namespace[:63]}", "--overwrite")


def one_pod_per_labelled_node(pod_template: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The template, its pods only on nodes labelled for this namespace, one per node."""
    pinned = copy.deepcopy(pod_template)
    pinned["metadata"]["labels"]["dashboard-test"] = "pinned"
    pinned["spec"]["nodeSelector"] = {SLOT: namespace[:63]}
    pinned["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"dashboard-test": "pinned"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    return pinned


# --- actions -------------------------------------------------------------------------------


def test_promote_from_the_page_switches_prod_and_the_rollback_window_counts_down(
    operator: OperatorProcess,
    driver: Driver,
    namespace: str,
    browser: webdriver.Chrome,
    open_dashboard: Opener,
) -> None:
    paused_preview(driver, namespace, scaleDownDelaySeconds=30)
    driver.create_app(namespace, "api", hello("v1", replicas=3))  # a second card, for the picture
    open_dashboard()
    wait_for(shows(browser, namespace, APP, "phase", "Paused"), what="Paused on the page")

    click_action(browser, namespace, APP, "promote")

    assert f'bluegreenapp "{APP}" promoted' in notice(browser, "done")
    wait_for(shows(browser, namespace, APP, "live", f"green {V2}"), what="green live on the page")
    app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
    assert app["spec"]["promote"] is True
    wait_for(shows(browser, namespace, APP, "phase", "Healthy"), what="Healthy on the page")
    countdown = card(browser, namespace, APP).find_element("css selector", ".countdown")
    first = int(countdown.text.split()[2])
    assert 20 < first <= 30, countdown.text
    assert "to blue " + V1 in field(browser, namespace, APP, "rollback")
    wait_for(lambda: int(countdown.text.split()[2]) <= first - 2, what="the countdown to run")
    screenshot(browser, "dashboard")

    browser.get(browser.current_url.split("#")[0] + f"#/app/{namespace}/{APP}")
    history = wait_page(
        browser,
        "const h = document.querySelector('.history'); return h && h.textContent;",
        what="the switch history",
    )
    assert "Switched" in history
    assert browser.find_element("css selector", "table.events").text.count("Switched") >= 1
    screenshot(browser, "dashboard-app")
    browser.find_element("id", "theme").click()
    assert browser.execute_script("return document.documentElement.dataset.theme") == "dark"
    screenshot(browser, "dashboard-app-dark")
    browser.find_element("id", "theme").click()

    click_action(browser, namespace, APP, "rollback")

    assert f"rolled back to revision {V1} (still on blue)" in notice(browser, "done")
    wait_for(shows(browser, namespace, APP, "live", f"blue {V1}"), what="blue live again")
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue", activeRevision=V1)


@pytest.fixture
def admission_policy() -> Iterator[None]:
    """deploy/'s admission policy (editing an app needs the rights it exercises), applied
    for the test unless an install has it already, and removed again if it was applied."""
    present = subprocess.run(
        ["kubectl", "get", f"validatingadmissionpolicy/{POLICY}"], capture_output=True
    )
    if present.returncode != 0:
        kubectl("apply", "-f", str(ADMISSION_POLICY))
    try:
        yield
    finally:
        if present.returncode != 0:
            kubectl("delete", "-f", str(ADMISSION_POLICY), "--ignore-not-found")


@pytest.mark.parametrize(
    ("rights", "policy", "refusal"),
    [
        pytest.param(
            READ_ONLY,
            False,
            'User "system:serviceaccount:{ns}:viewer" cannot patch resource "bluegreenapps"',
            id="rbac-read-only",
        ),
        # RBAC lets this one patch apps but not create Deployments: deploy/'s policy says no
        # to a spec change, since the operator would act on it.
        pytest.param(
            (*READ_ONLY, ("bluegreenapps.bluegreen.dev", "patch")),
            True,
            f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: "
            "user system:serviceaccount:{ns}:viewer may not create and update Deployments",
            id="admission-policy",
        ),
    ],
)
def test_a_user_without_rights_sees_the_api_servers_refusal(
    kube_cluster: KubeCluster,
    driver: Driver,
    namespace: str,
    browser: webdriver.Chrome,
    open_dashboard: Opener,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    rights: tuple[tuple[str, str], ...],
    policy: bool,
    refusal: str,
) -> None:
    """A ServiceAccount that may read apps, Deployments and Events (and patch apps, for the
    policy): the page lists the app, and a promote shows the API server's refusal."""
    if policy:
        request.getfixturevalue("admission_policy")
    driver.create_app(namespace, APP, hello("v1"))
    viewer = restricted_kubeconfig(kube_cluster, namespace, rights, tmp_path / "viewer")
    open_dashboard(viewer)
    wait_for(lambda: card(browser, namespace, APP), what="the app, read with the viewer's rights")

    click_action(browser, namespace, APP, "promote")

    refused = notice(browser, "refused")
    assert refused.startswith("Refused by the Kubernetes API server: forbidden: "), refused
    assert refusal.format(ns=namespace) in refused, refused
    assert driver.app(namespace, APP)["spec"].get("promote") in (None, False)
    if not policy:
        screenshot(browser, "dashboard-refused")


def test_an_app_a_gitops_tool_manages_is_refused_unless_forced(
    driver: Driver, namespace: str, browser: webdriver.Chrome, open_dashboard: Opener
) -> None:
    driver.create_app(
        namespace, APP, hello("v1", promote=False), labels={"app.kubernetes.io/instance": APP}
    )
    open_dashboard()
    wait_for(lambda: card(browser, namespace, APP), what="the card")

    click_action(browser, namespace, APP, "promote")

    refused = notice(browser, "refused")
    assert refused.startswith(
        f'Refused by the plugin\'s rules: bluegreenapp "{APP}" is managed by GitOps '
        f"(label app.kubernetes.io/instance={APP}): commit promote: true to Git instead"
    ), refused
    assert driver.app(namespace, APP)["spec"]["promote"] is False

    browser.execute_script("document.getElementById('notice').hidden = true")
    card(browser, namespace, APP).find_element("css selector", "[data-action=promote]").click()
    wait_page(browser, "return document.getElementById('confirm').open", what="the dialog")
    assert browser.find_element("id", "confirm-gitops").is_displayed()
    browser.find_element("id", "confirm-force").click()
    browser.find_element("id", "confirm-ok").click()

    done = notice(browser, "done")
    assert f'bluegreenapp "{APP}" promoted' in done
    assert "self-heal puts Git's spec.promote back" in done
    assert driver.app(namespace, APP)["spec"]["promote"] is True


FAILED_CHECK = {
    "name": "smoke",
    "stage": "preview",
    "revision": V2,
    "state": "Failed",
    "successes": 0,
    "failures": 3,
    "message": "HTTP 500: database unreachable (expected 200)",
}


def test_checks_show_their_state_and_last_answer_and_retry_runs_them_again(
    driver: Driver,
    namespace: str,
    browser: webdriver.Chrome,
    open_dashboard: Opener,
    kube_cluster: KubeCluster,
) -> None:
    """The status is written as the operator writes it (its status subresource): on the
    simulated nodes no check can reach a preview, so none would fail by itself."""
    checks = [{"name": "smoke", "http": {"path": "/healthz"}}]
    driver.create_app(namespace, APP, hello("v2", checks=checks))
    write_status(
        kube_cluster,
        namespace,
        {"phase": "Degraded", "message": "check smoke failed", "checks": [FAILED_CHECK]},
    )
    open_dashboard()
    wait_for(shows(browser, namespace, APP, "phase", "Degraded"), what="Degraded on the page")
    rows = card(browser, namespace, APP).find_element("css selector", "table.checks").text
    assert f"smoke preview {V2} Failed 0 3 HTTP 500: database unreachable" in rows, rows

    click_action(browser, namespace, APP, "retry")

    assert "spec.retryChecks is now 1" in notice(browser, "done")
    assert driver.app(namespace, APP)["spec"]["retryChecks"] == 1


# --- the connection ------------------------------------------------------------------------


def test_a_stopped_api_server_shows_disconnected_and_the_page_recovers(
    kube_cluster: KubeCluster,
    driver: Driver,
    namespace: str,
    browser: webdriver.Chrome,
    open_dashboard: Opener,
    tmp_path: Path,
) -> None:
    driver.create_app(namespace, APP, hello("v1"))
    with TcpProxy(api_server_address(kube_cluster)) as relay:
        open_dashboard(relayed_kubeconfig(kube_cluster, relay.port, tmp_path / "relayed"))
        wait_for(lambda: card(browser, namespace, APP), what="the card")
        browser.execute_script("window.notReloaded = true")

        stopped = time.monotonic()
        relay.refuse()
        banner = wait_page(
            browser,
            "const b = document.getElementById('banner');"
            "return document.body.dataset.connection === 'disconnected' && !b.hidden"
            " && b.textContent;",
            what="the page to say it is disconnected",
        )
        noticed = time.monotonic() - stopped
        assert banner.startswith("Disconnected from the Kubernetes API server since "), banner
        assert f"cannot reach the Kubernetes API at https://127.0.0.1:{relay.port}" in banner
        # The watches broke off; the lists tried again since are refused, and it says so.
        wait_page(
            browser,
            "return document.getElementById('banner').textContent.includes('Connection refused')",
            what="the page to say the API server refuses connections",
        )
        assert browser.find_element("id", "connection").text == "Disconnected"
        assert card(browser, namespace, APP).is_displayed()  # what was known stays, greyed
        screenshot(browser, "dashboard-disconnected")
        driver.create_app(namespace, "later", hello("v1"))  # made while the page cannot see

        restarted = time.monotonic()
        relay.restore()
        wait_page(
            browser,
            "return document.body.dataset.connection === 'connected'"
            " && document.getElementById('banner').hidden",
            what="the page to be live again",
        )
        recovered = time.monotonic() - restarted
        wait_for(lambda: card(browser, namespace, "later"), what="the app made meanwhile")
        assert browser.find_element("id", "connection").text == "Live"
        assert browser.execute_script("return window.notReloaded") is True
    print(f"disconnect shown after {noticed:.2f} s, recovered {recovered:.2f} s after restart")
    assert noticed < 10 and recovered < 10


# --- helpers -------------------------------------------------------------------------------


def write_status(kube_cluster: KubeCluster, namespace: str, status: dict[str, Any]) -> None:
    """As the operator does: through the status subresource, for the current generation."""
    generation = kubectl(
        "get", "bga", APP, "-n", namespace, "-o", "jsonpath={.metadata.generation}"
    ).strip()
    patch = {"status": {"observedGeneration": int(generation), **status}}
    kubectl(
        "patch", "bga", APP, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", yaml.safe_dump(patch),
    )  # fmt: skip


def kubectl(*args: str) -> str:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def admin_config(kube_cluster: KubeCluster) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    return loaded


def api_server_address(kube_cluster: KubeCluster) -> tuple[str, int]:
    server = admin_config(kube_cluster)["clusters"][0]["cluster"]["server"]
    host, _, port = server.removeprefix("https://").partition(":")
    return host, int(port)


def relayed_kubeconfig(kube_cluster: KubeCluster, port: int, path: Path) -> Path:
    """The admin's kubeconfig with the server reached through the relay on ``port``."""
    config = admin_config(kube_cluster)
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return path


def restricted_kubeconfig(
    kube_cluster: KubeCluster, namespace: str, rights: tuple[tuple[str, str], ...], path: Path
) -> Path:
    """A kubeconfig of ServiceAccount "viewer", with only ``rights`` (resource, verbs)."""
    kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    for index, (resource, verbs) in enumerate(rights):
        role = f"viewer-{index}"
        kubectl(
            "create", "role", role, f"--verb={verbs}", f"--resource={resource}", "-n", namespace
        )
        kubectl(
            "create", "rolebinding", role, f"--role={role}",
            f"--serviceaccount={namespace}:viewer", "-n", namespace,
        )  # fmt: skip
    token = kubectl("create", "token", "viewer", "-n", namespace, "--duration=1h").strip()
    config = admin_config(kube_cluster)
    cluster = config["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "viewer", "user": {"token": token}}],
        "contexts": [{"name": "viewer", "context": {"cluster": cluster["name"], "user": "viewer"}}],
        "current-context": "viewer",
    }
    path.write_text(yaml.safe_dump(config))
    return path
