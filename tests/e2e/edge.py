"""The proxy of the real-node tests (hack/edge.sh): Traefik on 127.0.0.1, serving the
Ingresses of IngressClass ``traefik`` and the HTTPRoutes attached to Gateway
``bluegreen-edge/edge``, each request sent to the real node's pods by their pod IPs."""

from __future__ import annotations

import http.client
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EDGE_SH = REPO / "hack" / "edge.sh"
EDGE_DIR = REPO / ".edge"


@dataclass(frozen=True)
class Edge:
    port: int  # the entry point on 127.0.0.1 (the Gateway's listener)
    gateway_namespace: str
    gateway: str
    ingress_class: str

    def parent_ref(self) -> dict[str, str]:
        return {"name": self.gateway, "namespace": self.gateway_namespace}

    def answer(self, host: str, headers: dict[str, str] | None = None) -> str | None:
        """The version that answers one request for ``host`` through the proxy, or None."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/", headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            return body.split(" ", 1)[0] if response.status == 200 else None
        except OSError:
            return None
        finally:
            conn.close()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE_SH), *args], cwd=REPO, capture_output=True, text=True, check=False
    )


def up() -> tuple[Edge, bool]:
    """Start the proxy (idempotent): it, and True when this call started it."""
    started = _run("status").returncode != 0 and not EDGE_DIR.exists()
    result = _run("up")
    if result.returncode != 0:
        raise RuntimeError(f"hack/edge.sh up failed:\n{result.stderr}")
    env = dict(line.split("=", 1) for line in _run("env").stdout.split())
    namespace, gateway = env["EDGE_GATEWAY"].split("/")
    port = int(env["EDGE_URL"].rsplit(":", 1)[1])
    return Edge(port, namespace, gateway, env["EDGE_INGRESS_CLASS"]), started


def install_crds() -> None:
    """The Gateway API CRDs in the cluster (what a platform's gateway install brings), with
    no proxy: the kinds the operator's RBAC and the admission policy name."""
    result = _run("crds")
    if result.returncode != 0:
        raise RuntimeError(f"hack/edge.sh crds failed:\n{result.stderr}")


def down() -> None:
    result = _run("down")
    if result.returncode != 0:
        raise RuntimeError(f"hack/edge.sh down failed:\n{result.stderr}")
