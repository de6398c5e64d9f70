"""The real node (hack/real-node.sh) for tests and the traffic benchmark, and the app that
runs on it: the repo's test server (hack/testserver) behind a NodePort the real node's
kube-proxy serves on 127.0.0.1."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REAL_NODE_SH = REPO / "hack" / "real-node.sh"
NODE_DIR = REPO / ".cluster" / "node"
NODE_LABEL = "bluegreen.dev/real-node"
IMAGE = "bluegreen.local/testserver:test"

Obj = dict[str, Any]


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=REPO, capture_output=True, text=True, check=False
    )


def unsupported_reason() -> str | None:
    """Why this host cannot run a real node (root, bridge, overlayfs...), or None."""
    check = _run(REAL_NODE_SH, "check-host")
    return None if check.returncode == 0 else (check.stdout + check.stderr).strip()


def up() -> bool:
    """Start the real node (idempotent); True when this call started it."""
    started = _run(REAL_NODE_SH, "status").returncode != 0 and not NODE_DIR.exists()
    result = _run(REAL_NODE_SH, "up")
    if result.returncode != 0:
        raise RuntimeError(f"hack/real-node.sh up failed:\n{result.stderr}")
    return started


def down() -> None:
    result = _run(REAL_NODE_SH, "down")
    if result.returncode != 0:
        raise RuntimeError(f"hack/real-node.sh down failed:\n{result.stderr}")


def template(version: str, ready_fails: bool = False, **env_vars: str) -> Obj:
    """The test server at ``version``, pinned to the real node; with ``ready_fails`` its
    readiness probe never passes; ``env_vars`` set more of its environment (FAIL_PATH,
    FAIL_AFTER, EXIT_CODE: see hack/testserver)."""
    env = [{"name": "VERSION", "value": version}]
    if ready_fails:
        env.append({"name": "READY_FAIL", "value": "1"})
    env += [{"name": k, "value": v} for k, v in sorted(env_vars.items())]
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {NODE_LABEL: "true"},
            "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {
                    "name": "web",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "env": env,
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


def web(version: str, replicas: int = 3, **extra: Any) -> Obj:
    """A BlueGreenApp spec whose prod Service is a NodePort (the API server picks the port)."""
    return {
        "replicas": replicas,
        "template": template(version),
        "service": {"type": "NodePort", "ports": [{"port": 80, "targetPort": 8080}]},
        **extra,
    }


def node_port(service: Obj) -> int:
    return int(service["spec"]["ports"][0]["nodePort"])


def answer(port: int) -> str | None:
    """The version that answers one request on 127.0.0.1:port, or None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return body.split(" ", 1)[0] if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()
