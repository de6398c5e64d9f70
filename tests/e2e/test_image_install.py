"""The operator image's install and entrypoint, tested without Docker.

There is no container runtime here, so the image is not built; what its Dockerfile says is
done by hand, read from the Dockerfile itself: the builder stage's COPY (through
.dockerignore) and RUN lines into a directory that stands for the image's root, then the
final stage's ENTRYPOINT + CMD with its ENV, against the local control plane.

The second test runs that entrypoint the way deploy/ runs the container: the Deployment's
args and env, its user, a read-only root filesystem, and the ServiceAccount token where the
kubelet mounts it (in a private mount namespace, so it needs root, unshare and setpriv).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockerfile import Instruction, parse_dockerfile
from driver import Driver
from kubehelpers import KubeCluster, wait_for
from specs import hello, template

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
NAMESPACED_OVERLAY = REPO / "deploy" / "overlays" / "namespaced"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


# ---------------------------------------------------------------- reading the Dockerfile


def dockerignore_excludes(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps a path out of the build context: the last pattern that
    matches the path or one of its parent directories decides; `!` lets it back in."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negated
    return excluded


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@pytest.mark.parametrize(
    "path, excluded",
    [
        pytest.param("pyproject.toml", False, id="let-back-in"),
        pytest.param("tests/conftest.py", True, id="everything-else-out"),
        pytest.param("operator/bluegreen/kube/client.py", False, id="package-source"),
        pytest.param("operator/bluegreen_operator.egg-info/PKG-INFO", True, id="egg-info"),
        pytest.param(
            "operator/bluegreen/kube/__pycache__/client.cpython-311.pyc", True, id="pycache"
        ),
    ],
)
def test_dockerignore_reading(path: str, excluded: bool) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert dockerignore_excludes(path, patterns) is excluded


# ---------------------------------------------------------------- building it by hand


@dataclass(frozen=True)
class Image:
    """The image, unpacked: ``root`` stands for its ``/``."""

    root: Path
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    user: str

    @property
    def uid_gid(self) -> tuple[int, int]:
        uid, _, gid = self.user.partition(":")
        return int(uid), int(gid or uid)


class Builder:
    """Replays the Dockerfile's stages into one directory standing for the image root.

    Absolute paths the build creates (WORKDIRs, virtualenvs) are rebased under it; the
    final stage must only take what the builder made (a RUN there could not be replayed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.image_dirs: list[str] = []
        self.workdir = "/"
        self.env: dict[str, str] = {}
        shim = root / ".shim"
        shim.mkdir()
        # The image's `python`: this interpreter (the same minor version as the base).
        (shim / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        (shim / "python").chmod(0o755)
        self.shim = shim

    def rebase(self, text: str) -> str:
        for image_dir in sorted(self.image_dirs, key=len, reverse=True):
            text = re.sub(
                rf"(^|[\s=:\"'])({re.escape(image_dir)})(?=$|[/\s:\"'])",
                lambda m: m.group(1) + str(self.root) + m.group(2),
                text,
            )
        return text

    def host(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def apply_env(self, arguments: str) -> None:
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            # Rebased first: what ${PATH} expands to is this machine's, not the image's.
            self.env[key] = re.sub(
                r"\$\{(\w+)\}",
                lambda m: self.env.get(m[1], os.environ.get(m[1], "")),
                self.rebase(value),
            )

    def build_stage(self, stage: list[Instruction], context: Path) -> None:
        patterns = [
            line.strip()
            for line in (context / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        for instruction in stage[1:]:
            keyword, arguments = instruction.keyword, instruction.arguments
            if keyword == "ENV":
                self.apply_env(arguments)
            elif keyword == "WORKDIR":
                self.workdir = arguments
                self.image_dirs.append(arguments)
                self.host(arguments).mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                *sources, dest = shlex.split(arguments)
                assert not dest.startswith("--"), instruction
                target = self.host(os.path.join(self.workdir, dest))
                for source in sources:
                    self.copy(context, source.rstrip("/"), target, patterns)
            elif keyword == "RUN":
                for venv in re.findall(r"python -m venv (\S+)", arguments):
                    self.image_dirs.append(venv)
                env = {**os.environ, **self.env}
                env["PATH"] = f"{self.shim}:{env['PATH']}"
                subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", self.rebase(arguments)],
                    cwd=self.host(self.workdir),
                    env=env,
                    check=True,
                    capture_output=True,
                )

    @staticmethod
    def copy(context: Path, source: str, target: Path, patterns: list[str]) -> None:
        src = context / source
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for file in files:
            relative = file.relative_to(context).as_posix()
            if dockerignore_excludes(relative, patterns):
                continue
            dest = target / file.name if src.is_file() else target / file.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, dest)


def build_image(root: Path) -> Image:
    *builders, final = parse_dockerfile(DOCKERFILE.read_text())
    builder = Builder(root)
    for stage in builders:
        builder.build_stage(stage, REPO)

    def args_of(keyword: str) -> list[str]:
        return [i.arguments for i in final if i.keyword == keyword]

    assert not args_of("RUN"), "the final stage runs commands this test cannot replay"
    for copy in args_of("COPY"):
        source, dest = shlex.split(copy)[-2:]
        assert copy.startswith("--from=") and source == dest, f"cannot replay COPY {copy}"
    builder.env = {}
    for env in args_of("ENV"):
        builder.apply_env(env)
    return Image(
        root=root,
        entrypoint=json.loads(args_of("ENTRYPOINT")[-1]),
        cmd=json.loads(args_of("CMD")[-1]),
        env=builder.env,
        user=args_of("USER")[-1],
    )


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The image, built once for this module (a real `pip install .`: ~20 s)."""
    # Not under pytest's tmp_path: its directories are private to root, and the second
    # test runs the image as the non-root uid of its USER line.
    root = Path(tempfile.mkdtemp(prefix="bluegreen-image-"))
    root.chmod(0o755)
    try:
        yield build_image(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- running it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def on_local_port(args: list[str], port: int) -> tuple[list[str], str]:
    """The arguments with the liveness URL moved to 127.0.0.1:port (the image binds
    0.0.0.0:8080; here that port may be taken), readiness and metrics to another free port
    of 127.0.0.1 (the Deployment binds 0.0.0.0:8081), and the liveness URL to probe."""
    out, url = [], ""
    endpoints = f"127.0.0.1:{free_port()}"
    for arg in args:
        flag, _, value = arg.partition("=")
        if flag == "--liveness":
            parsed = urllib.parse.urlsplit(value)
            url = parsed._replace(netloc=f"127.0.0.1:{port}").geturl()
            arg = f"--liveness={url}"
        elif flag == "--readiness":
            arg = f"--readiness={urllib.parse.urlsplit(value)._replace(netloc=endpoints).geturl()}"
        elif flag == "--metrics-address":
            arg = f"--metrics-address={endpoints}"
        out.append(arg)
    assert url, f"no --liveness in {args}"
    return out, url


def answers_200(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def is_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    """The readiness probe's verdict: 503 (not yet) is an answer, not an error."""
    try:
        return answers_200(url, proc, log)
    except urllib.error.HTTPError as err:
        err.close()
        return False


def stop(proc: subprocess.Popen[bytes], grace: float = 30) -> int:
    """SIGTERM, as the kubelet stops a container; SIGKILL after the grace period."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_image_entrypoint_and_cmd_run_the_installed_operator(
    image: Image, kube_cluster: KubeCluster, driver: Driver, namespace: str, tmp_path: Path
) -> None:
    venv_bin = Path(shutil.which(image.entrypoint[0], path=image.env["PATH"]) or "").parent
    assert venv_bin.is_relative_to(image.root), f"{image.entrypoint[0]} is not in the image"
    site = subprocess.run(
        [venv_bin / "python", "-c", "import bluegreen; print(bluegreen.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "site-packages" in site and Path(site).is_relative_to(image.root)  # not editable
    # Compiled at install time: nothing needs writing at run time.
    assert list((Path(site).parent / "kube" / "__pycache__").glob("client.*.pyc"))

    args, url = on_local_port(image.cmd, free_port())
    # --namespace: with the CMD alone it would serve every namespace, and so take over the
    # apps of the tests that run beside this one.
    argv = [*image.entrypoint, *args, "--namespace", namespace]
    env = {**os.environ, **image.env, "KUBECONFIG": str(kube_cluster.kubeconfig)}
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: answers_200(url, proc, log), timeout=30, what="the liveness endpoint")
        assert cmdline(proc.pid)[1:] == [str(venv_bin / image.entrypoint[0]), *argv[1:]]

        driver.create_app(namespace, "hello", hello())
        driver.wait_app(namespace, "hello", phase="Healthy", activeColor="blue")
    finally:
        code = stop(proc)
    assert code == 0, log.read_text(errors="replace")[-4000:]


# ---------------------------------------------------------------- as the Deployment runs it


def pod_like_runtime_available() -> str | None:
    """Why the pod cannot be imitated here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (mount namespace, switching to the image's uid)"
    for tool in ("unshare", "setpriv", "mount", "findmnt"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return None if probe.returncode == 0 else "unshare --mount is not permitted here"


# Runs as root in a private mount namespace, then execs the command as the pod's user.
# $1: "true" for a read-only root; $2: the directory to mount as the ServiceAccount volume;
# $3/$4: uid/gid; the rest: the command.
POD_SH = r"""
set -euo pipefail
read_only=$1 sa_dir=$2 uid=$3 gid=$4
shift 4
run=$(readlink -f /var/run)
# What the container runtime would provide: its own /run with the token volume, read-only.
mount -t tmpfs -o mode=0755 tmpfs "$run"
mkdir -p /var/run/secrets/kubernetes.io/serviceaccount
mount --bind "$sa_dir" /var/run/secrets/kubernetes.io/serviceaccount
mount -o remount,bind,ro /var/run/secrets/kubernetes.io/serviceaccount
if [[ $read_only == true ]]; then
  mount -o remount,bind,ro /
  [[ $(findmnt -no OPTIONS /) == ro* ]] || { echo "root is not read-only" >&2; exit 90; }
fi
# The pod drops every capability. CAP_DAC_READ_SEARCH (read-only, no write) is kept only so
# that the image's uid can read this machine's Python where it is installed (perhaps a
# private home directory); in the image it lives under /usr/local.
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups \
  --inh-caps=+dac_read_search --ambient-caps=+dac_read_search -- "$@"
"""


def kustomize_namespaced(namespace: str, tmp_path: Path) -> list[Obj]:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization = {
        "namespace": namespace,
        "resources": [os.path.relpath(NAMESPACED_OVERLAY, overlay)],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    subprocess.run(
        ["kubectl", "apply", "--server-side", "-f", "-"],
        input=rendered,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(yaml.safe_load_all(rendered))


POD_NAME = "bluegreen-operator-7c9f8d-x2x4q"


def container_env(container: Obj, image_env: dict[str, str], namespace: str) -> dict[str, str]:
    """The image's ENV, then the container's env (the downward API resolved)."""
    env = dict(image_env)
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            field = var["valueFrom"]["fieldRef"]["fieldPath"]
            resolved = {"metadata.namespace": namespace, "metadata.name": POD_NAME}
            assert field in resolved, f"cannot resolve {field}"
            env[var["name"]] = resolved[field]
    return env


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg)


def service_account_volume(
    kube_cluster: KubeCluster, namespace: str, name: str, directory: Path
) -> Path:
    """What the kubelet mounts: a token for the ServiceAccount, the cluster CA, the
    namespace; world-readable, like the projected volume's default mode 0644."""
    token = subprocess.run(
        ["kubectl", "create", "token", name, "-n", namespace, "--duration=1h"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    admin = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    ca = base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"])
    directory.mkdir()
    directory.chmod(0o755)
    for file_name, content in (("token", token.encode()), ("ca.crt", ca)):
        (directory / file_name).write_bytes(content)
    (directory / "namespace").write_text(namespace)
    for file in directory.iterdir():
        file.chmod(0o644)
    return directory


def test_image_runs_as_the_namespaced_deployment_runs_it(
    image: Image, kube_cluster: KubeCluster, driver: Driver, namespace: str
) -> None:
    """In-cluster config from the mounted token, the Deployment's args and env, its uid, a
    read-only root filesystem and no writable /tmp (there is no emptyDir): the operator
    starts, answers its liveness probe, serves an app, and stops cleanly on SIGTERM."""
    reason = pod_like_runtime_available()
    if reason:
        pytest.skip(reason)
    # The pod's files must be readable by its uid: not under pytest's private tmp_path.
    work = image.root / f"pod-{namespace}"
    work.mkdir()
    work.chmod(0o755)

    objects = kustomize_namespaced(namespace, work)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert "command" not in container, "the Deployment replaces the image's ENTRYPOINT"
    assert not pod.get("volumes"), "a volume this test does not provide"
    env = container_env(container, image.env, namespace)
    args, url = on_local_port([expand(a, env) for a in container["args"]], free_port())
    assert f"--namespace={namespace}" in args
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probed_port = ports.get(probe["port"], probe["port"])
    liveness = next(a for a in container["args"] if a.startswith("--liveness="))
    assert urllib.parse.urlsplit(liveness.removeprefix("--liveness=")).port == probed_port
    url = urllib.parse.urljoin(url, probe["path"])

    server = urllib.parse.urlsplit(
        yaml.safe_load(kube_cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    )
    # What Kubernetes adds to every container's environment; no kubeconfig anywhere.
    env |= {
        "KUBERNETES_SERVICE_HOST": str(server.hostname),
        "KUBERNETES_SERVICE_PORT": str(server.port),
        "HOSTNAME": deployment["metadata"]["name"],
        "HOME": "/",
    }
    env.pop("KUBECONFIG", None)
    sa_dir = service_account_volume(
        kube_cluster, namespace, pod["serviceAccountName"], work / "serviceaccount"
    )
    uid, gid = security["runAsUser"], security.get("runAsGroup", security["runAsUser"])
    assert (uid, gid) == image.uid_gid  # the Deployment runs the image's own user
    read_only = "true" if security.get("readOnlyRootFilesystem") else "false"
    # The image's PATH finds the entrypoint, as the runtime does.
    entrypoint = shutil.which(image.entrypoint[0], path=env["PATH"])
    assert entrypoint is not None
    argv = ["unshare", "--mount", "--propagation", "private", "bash", "-c", POD_SH, "pod"]
    argv += [read_only, str(sa_dir), str(uid), str(gid), entrypoint, *args]

    log = work / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd="/", stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: answers_200(url, proc, log), timeout=30, what="the liveness probe")
        ready = next(a.partition("=")[2] for a in args if a.startswith("--readiness="))
        assert urllib.parse.urlsplit(ready).path == container["readinessProbe"]["httpGet"]["path"]
        wait_for(lambda: is_ready(ready, proc, log), timeout=30, what="the readiness probe")
        assert answers_200(urllib.parse.urljoin(ready, "/metrics"), proc, log)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{uid}\s", status, re.MULTILINE), status

        driver.create_app(namespace, "hello", hello())
        driver.wait_app(namespace, "hello", phase="Healthy", activeColor="blue")
        driver.patch_spec(namespace, "hello", {"template": template("v2"), "promote": True})
        driver.wait_app(namespace, "hello", phase="Healthy", activeColor="green")
    finally:
        code = stop(proc, grace=pod.get("terminationGracePeriodSeconds", 30))
    text = log.read_text(errors="replace")
    assert code == 0, text[-4000:]
    for sign in ("Read-only file system", "Permission denied", "Forbidden", "Traceback"):
        assert sign not in text, text[-4000:]
