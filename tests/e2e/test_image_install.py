"""The operator image, built for real and run.

`make image` (hack/build-image.sh) builds the Dockerfile as it is with buildah, on a Debian
bookworm base with Debian's python3.11 (no registry is reachable to pull
python:3.11-slim-bookworm). These tests take that image's archive, check what it holds,
unpack its layers and run its entrypoint from its own filesystem (a chroot of its root, in
a private mount namespace: needs root): once with a writable root, proving it writes
nothing; once the way deploy/ runs the container (the Deployment's args and env, uid
65532, a read-only root filesystem, the ServiceAccount token where the kubelet mounts it)
against the local control plane. The pods of deploy/ run it on the real node's containerd
in test_operator_pods.py.
"""

from __future__ import annotations

import base64
import os
import re
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

from driver import Driver
from image import Image, unpack
from kubehelpers import KubeCluster, wait_for
from specs import hello, template

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
NAMESPACED_OVERLAY = REPO / "deploy" / "overlays" / "namespaced"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make", "ld", "as")


@dataclass(frozen=True)
class Root:
    """The image unpacked: ``path`` stands for its ``/``."""

    path: Path
    image: Image


@pytest.fixture(scope="module")
def root(image: Image) -> Iterator[Root]:
    # Not under pytest's tmp_path: its directories are private to root, and the image runs
    # as the uid of its USER line.
    path = Path(tempfile.mkdtemp(prefix="bluegreen-image-"))
    path.chmod(0o755)
    try:
        unpack(image, path)
        # The mount points a container runtime makes before the root turns read-only.
        for mount_point in ("dev", "run/secrets/kubernetes.io/serviceaccount"):
            (path / mount_point).mkdir(parents=True, exist_ok=True)
        yield Root(path, image)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


# ---------------------------------------------------------------- what it holds


def test_image_config_runs_the_console_script_as_a_numeric_user(image: Image) -> None:
    assert image.config["User"] == "65532:65532"
    assert image.entrypoint == ["bluegreen-operator"]
    assert image.cmd == ["--liveness=http://0.0.0.0:8080/healthz"]
    assert image.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert image.env["PATH"].startswith("/opt/venv/bin:")
    # The base, and the builder's virtualenv: nothing else makes a layer.
    assert len(image.layers) == 2, image.layers


def in_image(root: Root, path: str) -> Path:
    return root.path / path.lstrip("/")


def image_path_dirs(root: Root) -> list[Path]:
    return [in_image(root, d) for d in root.image.env["PATH"].split(":")]


def test_image_holds_no_pip_compiler_or_source_tree(root: Root) -> None:
    on_path = {p.name for d in image_path_dirs(root) if d.is_dir() for p in d.iterdir()}
    assert "bluegreen-operator" in on_path
    assert not {n for n in on_path if re.fullmatch(r"pip(3(\.\d+)?)?", n)}, "pip on PATH"
    assert not on_path & set(COMPILERS), on_path & set(COMPILERS)
    packages = [
        p
        for p in root.path.glob("**/*-packages/*")
        if p.parent.name in ("site-packages", "dist-packages")
    ]
    names = {p.name for p in packages}
    assert "bluegreen" in names and "kopf" in names
    assert not {n for n in names if n in ("pip", "setuptools") or n.startswith("pip-")}, names
    assert not in_image(root, "/src").exists()
    assert not list(root.path.glob("**/pyproject.toml")), "a source tree in the image"
    # Compiled at build time: nothing is compiled (written) at run time.
    package = in_image(root, "/opt/venv/lib/python3.11/site-packages/bluegreen")
    for source in package.rglob("*.py"):
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        assert cached.exists(), f"{source} was not compiled"


# ---------------------------------------------------------------- running it

# Runs as root in a private mount namespace: the image's root as a mount of its own, with
# what a container runtime provides (/proc, a few devices, the token volume), then chroots
# into it and becomes the image's user, with no capability left (setuid from root drops
# them all). $1: the root; $2: "true" for a read-only root; $3: the directory to mount as the
# ServiceAccount volume ("" for none); $4/$5: uid/gid; the rest: the command.
CONTAINER_SH = r"""
set -euo pipefail
root=$1 read_only=$2 sa_dir=$3 uid=$4 gid=$5
shift 5
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
for d in null zero full random urandom tty; do
  touch "$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
if [[ -n $sa_dir ]]; then
  mount --bind "$sa_dir" "$root/run/secrets/kubernetes.io/serviceaccount"
  mount -o remount,bind,ro "$root/run/secrets/kubernetes.io/serviceaccount"
fi
if [[ $read_only == true ]]; then
  mount -o remount,bind,ro "$root"
  [[ $(findmnt -no OPTIONS "$root") == ro* ]] || { echo "root is not read-only" >&2; exit 90; }
fi
exec "$PYTHON" -c "$CHROOT_PY" "$root" "$uid" "$gid" "$@"
"""


# What the shell above execs into: chroot, become the user, exec the command.
CHROOT_PY = """
import os, sys
root, uid, gid, *argv = sys.argv[1:]
os.chroot(root)
os.chdir("/")
os.setgroups([])
os.setgid(int(gid))
os.setuid(int(uid))
# The image's PATH finds the entrypoint, as the runtime does (by hand: after the chroot the
# host's standard library is out of reach, and os.execvpe would import from it).
for d in os.environ["PATH"].split(":"):
    path = os.path.join(d, argv[0])
    if os.access(path, os.X_OK):
        os.execve(path, argv, os.environ)
sys.exit(f"{argv[0]} is not on the image's PATH")
"""


def container_runtime_reason() -> str | None:
    """Why the image cannot be run from its root here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (mount namespace, chroot, switching to the image's uid)"
    for tool in ("unshare", "mount", "findmnt"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return None if probe.returncode == 0 else "unshare --mount is not permitted here"


def container_argv(
    root: Root, argv: list[str], read_only: bool, sa_dir: Path | None = None
) -> list[str]:
    uid, gid = root.image.uid_gid
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "bash",
        "-c",
        CONTAINER_SH,
        "container",
        str(root.path),
        "true" if read_only else "false",
        str(sa_dir or ""),
        str(uid),
        str(gid),
        *argv,
    ]


def image_env(root: Root) -> dict[str, str]:
    """The image's ENV alone, and the host's interpreter that does the chroot."""
    return {**root.image.env, "PYTHON": sys.executable, "CHROOT_PY": CHROOT_PY, "HOME": "/"}


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path of the image's root with its mode, size and modification time, without
    the mount points the runtime fills (proc, dev, the token volume)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel in ("proc", "dev") or rel.startswith(("proc/", "dev/", "run/secrets")):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(rel, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("read_only", [False, True], ids=["writable-root", "read-only-root"])
def test_image_help_runs_as_its_user_and_writes_nothing(root: Root, read_only: bool) -> None:
    reason = container_runtime_reason()
    if reason:
        pytest.skip(reason)
    before = tree(root.path)
    result = subprocess.run(
        container_argv(root, [*root.image.entrypoint, "--help"], read_only),
        env=image_env(root),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--leader-elect" in result.stdout and "--namespace" in result.stdout
    assert "Read-only file system" not in result.stderr, result.stderr
    # As uid 65532 it could write only where the image lets anyone (/tmp, /var/tmp): the
    # writable run proves it does not.
    assert tree(root.path) == before, "the entrypoint wrote to the image's filesystem"


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


def deployment_env(container: Obj, image_env: dict[str, str], namespace: str) -> dict[str, str]:
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
    root: Root, kube_cluster: KubeCluster, driver: Driver, namespace: str, tmp_path: Path
) -> None:
    """In-cluster config from the mounted token, the Deployment's args and env, its uid, a
    read-only root filesystem and no writable /tmp (there is no emptyDir): the image's
    operator starts, answers its probes and metrics, releases an app, and stops cleanly on
    SIGTERM."""
    reason = container_runtime_reason()
    if reason:
        pytest.skip(reason)
    image = root.image
    objects = kustomize_namespaced(namespace, tmp_path)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert "command" not in container, "the Deployment replaces the image's ENTRYPOINT"
    assert not pod.get("volumes"), "a volume this test does not provide"
    env = deployment_env(container, image.env, namespace)
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
        "PYTHON": sys.executable,
        "CHROOT_PY": CHROOT_PY,
    }
    sa_dir = service_account_volume(
        kube_cluster, namespace, pod["serviceAccountName"], tmp_path / "serviceaccount"
    )
    tmp_path.chmod(0o755)
    uid, gid = security["runAsUser"], security.get("runAsGroup", security["runAsUser"])
    assert (uid, gid) == image.uid_gid  # the Deployment runs the image's own user
    read_only = bool(security.get("readOnlyRootFilesystem"))
    assert read_only
    argv = container_argv(root, [*image.entrypoint, *args], read_only, sa_dir)

    log = tmp_path / "operator.log"
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
        assert re.search(r"^CapEff:\s+0+$", status, re.MULTILINE), status
        # It is the image's interpreter that runs, from the image's root.
        assert os.readlink(f"/proc/{proc.pid}/root") == str(root.path)

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
