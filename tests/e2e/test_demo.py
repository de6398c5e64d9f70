"""`make demo` end to end: hack/demo.sh, the README walk-through, on the session's cluster.

The demo checks each step itself and says so in a line ``ok: ...``; these tests read its
output the way a person would: each step's header, the evidence its commands printed (the
app's phase and colors, the Services' selectors, the Events), its ``ok:`` line, the final
line and the exit code. Then, that it cleaned up: the operator it started is gone and its
namespace is being deleted. A second test breaks the switch on purpose and expects the demo
to fail at step 3, naming it, with the operator log's tail.

The demo runs its own operator for its own namespace only, so it does not meet the operators
of the other end-to-end tests. That namespace is bluegreen-demo unless DEMO_NAMESPACE says
otherwise; here it gets a unique name, so that two test sessions on one control plane (or a
`make demo` beside them) do not share it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from driver import refusing_selector
from kubehelpers import KubeCluster, dns_label

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "hack" / "demo.sh"

HEADERS = [
    "setup: local control plane, CRD, operator for namespace {namespace}",
    "step 1: v1 (1.0.0, promote: true) goes live",
    "step 2: v2 (2.0.0, promote: false) on preview",
    "step 3: promote (v2-promoted: promote: true)",
    "step 4: rollback to v1 (kubectl bluegreen rollback)",
    "cleanup",
]

OK_LINES = {
    "step 1": "ok: 1.0.0 is live on blue (phase Healthy, 2/2 pods ready); "
    "Services hello and hello-preview select blue",
    "step 2": "ok: 2.0.0 waits on green (phase Paused, 2/2 pods ready); "
    "prod Service hello still selects blue, hello-preview selects green",
    "step 3": "ok: prod switched to green in one step (phase Healthy, 1 Event Switched: "
    "blue to green); blue keeps its 2 pods for scaleDownDelaySeconds",
    "step 4": "ok: prod is back on blue at once (phase Healthy, Event Switched: green to blue) "
    "on the same 2 blue pods, no new pod",
}


def run_demo(namespace: str, **env: str) -> subprocess.CompletedProcess[str]:
    """hack/demo.sh, what `make demo` runs once the venv and the binaries exist."""
    return subprocess.run(
        [str(DEMO)],
        cwd=REPO,
        env={**os.environ, "DEMO_NAMESPACE": namespace, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def sections(stdout: str) -> dict[str, list[str]]:
    """The output split at its `==> ` headers: header -> the lines under it."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("==> "):
            current = found.setdefault(line.removeprefix("==> "), [])
        elif current is not None:
            current.append(line)
    return found


def step(found: dict[str, list[str]], prefix: str) -> str:
    """The text of the step whose header starts with ``prefix``, with its ok line last."""
    (lines,) = [lines for header, lines in found.items() if header.startswith(prefix + ":")]
    body = [line for line in lines if line.strip()]
    assert body and body[-1] == OK_LINES[prefix], f"{prefix} did not end with its ok line"
    return "\n".join(body)


def selects(text: str, service: str, color: str) -> bool:
    """Whether the Services table in ``text`` shows ``service`` selecting ``color``."""
    return re.search(rf"^\s+{re.escape(service)}\s+{color}$", text, re.MULTILINE) is not None


def get_bga(text: str, active: str, phase: str) -> bool:
    """Whether the `kubectl get bga hello` table in ``text`` shows this state."""
    return re.search(rf"^\s+hello\s+{active}\s+{phase}\s+true\s", text, re.MULTILINE) is not None


def operator_pid(stdout: str) -> int:
    match = re.search(r"^ok: control plane up, .* operator (\d+) live$", stdout, re.MULTILINE)
    assert match, "the setup did not say the operator was live"
    return int(match.group(1))


def runs_the_operator(pid: int, namespace: str) -> bool:
    """Whether ``pid`` is (still) the demo's operator, not a process that got its pid since."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return b"bluegreen" in cmdline and namespace.encode() in cmdline


def namespace_phase(core: kubernetes.client.CoreV1Api, namespace: str) -> str | None:
    """The namespace's phase, or None when it is gone."""
    try:
        status = core.read_namespace(namespace).status
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return None if status is None else str(status.phase)


@pytest.fixture
def core(kube_cluster: KubeCluster) -> Iterator[kubernetes.client.CoreV1Api]:
    with kube_cluster.api_client() as api:
        yield kubernetes.client.CoreV1Api(api)


@pytest.fixture
def demo_namespace(core: kubernetes.client.CoreV1Api) -> Iterator[str]:
    """A name for the demo's namespace. Afterwards the namespace is deleted if the demo left
    it (as it does when a step fails), and so is the operator log named after it."""
    name = dns_label("bluegreen-demo")
    yield name
    (REPO / ".cluster" / "logs" / f"{name}-operator.log").unlink(missing_ok=True)
    try:
        core.delete_namespace(name)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise


def test_demo_walks_through_the_quickstart(
    demo_namespace: str, core: kubernetes.client.CoreV1Api
) -> None:
    demo = run_demo(demo_namespace)
    output = f"--- stdout ---\n{demo.stdout}\n--- stderr ---\n{demo.stderr}"

    assert demo.returncode == 0, output
    assert demo.stdout.splitlines()[-1] == "demo: all steps passed", output
    found = sections(demo.stdout)
    assert list(found) == [h.format(namespace=demo_namespace) for h in HEADERS], output
    assert [line for line in demo.stdout.splitlines() if line.startswith("ok: ")][1:] == list(
        OK_LINES.values()
    ), output

    # Beyond the ok lines: what the commands of each step printed.
    one = step(found, "step 1")
    assert get_bga(one, "blue", "Healthy"), one
    assert "Phase:      Healthy" in one and "Active:     blue" in one, one

    two = step(found, "step 2")
    assert re.search(r"^\s+Phase:\s+Paused$", two, re.MULTILINE), two
    assert re.search(r"^\s+Preview:\s+green ", two, re.MULTILINE), two
    assert selects(two, "hello", "blue") and selects(two, "hello-preview", "green"), two

    three = step(found, "step 3")
    assert get_bga(three, "green", "Healthy"), three
    assert re.search(r"^\s+Normal\s+Switched\s.*from blue to green$", three, re.MULTILINE), three
    assert selects(three, "hello", "green") and selects(three, "hello-preview", "green"), three

    four = step(found, "step 4")
    assert "rolled back to revision" in four, four
    assert get_bga(four, "blue", "Healthy"), four
    # blue serves again while green still runs: the rollback needed no new pod
    assert re.search(r"^\s+green\s+previous\s+\S+\s+2/2\s", four, re.MULTILINE), four
    assert selects(four, "hello", "blue") and selects(four, "hello-preview", "blue"), four

    # Cleaned up: the operator stopped, the namespace gone or on its way out.
    assert not runs_the_operator(operator_pid(demo.stdout), demo_namespace), (
        "the demo's operator still runs"
    )
    assert namespace_phase(core, demo_namespace) in (None, "Terminating")


@pytest.fixture
def no_switch_to_green(demo_namespace: str, kube_cluster: KubeCluster) -> Iterator[None]:
    """An admission policy that refuses, in the demo's namespace only, to let Service hello
    select green: step 3's switch can never happen."""
    with (
        kube_cluster.api_client() as api,
        refusing_selector(api, demo_namespace, "hello", "green"),
    ):
        yield


def test_demo_fails_naming_the_step_when_prod_does_not_switch(
    demo_namespace: str, no_switch_to_green: None, core: kubernetes.client.CoreV1Api
) -> None:
    demo = run_demo(demo_namespace, DEMO_TIMEOUT="10")
    output = f"--- stdout ---\n{demo.stdout}\n--- stderr ---\n{demo.stderr}"

    assert demo.returncode == 1, output
    assert "demo: all steps passed" not in demo.stdout, output
    ok_lines = [line for line in demo.stdout.splitlines() if line.startswith("ok: ")]
    assert ok_lines[1:] == [OK_LINES["step 1"], OK_LINES["step 2"]], output
    assert re.search(
        r"^demo: FAILED at step 3: promote \(v2-promoted: promote: true\): "
        # activeColor, or phase when the status claims green already (a refused switch
        # leaves the app Degraded either way)
        r"timed out after 10s waiting for status\.(activeColor to be green|phase to be Healthy)",
        demo.stderr,
        re.MULTILINE,
    ), output
    # what the operator ran into is in the log tail the demo printed
    log = f".cluster/logs/{demo_namespace}-operator.log"
    assert f"demo: operator log ({log}), last 30 lines:" in demo.stderr, output
    assert "Service hello may not select green" in demo.stderr, output
    assert not runs_the_operator(operator_pid(demo.stdout), demo_namespace), (
        "the demo's operator still runs"
    )
    assert namespace_phase(core, demo_namespace) == "Active", "the namespace is left for a look"
