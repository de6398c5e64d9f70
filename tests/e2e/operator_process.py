"""The operator as a real process, as users run it (``python -m bluegreen``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from kubehelpers import wait_for


def _series(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """``python -m bluegreen --namespace NS`` as a real process, as users run it."""

    def __init__(
        self,
        namespace: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        more_namespaces: tuple[str, ...] = (),
        args: tuple[str, ...] = (),
        endpoints: bool = False,
    ) -> None:
        """``endpoints``: serve /metrics and /readyz too (see :meth:`scrape`)."""
        self.namespace = namespace
        self.args = args
        self.endpoints_port = free_port() if endpoints else None
        self.namespaces = (namespace, *more_namespaces)
        self.log_path = log_path
        self.env = {**os.environ, "BLUEGREEN_RESYNC_SECONDS": "20", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/healthz"
        log = self.log_path.open("ab")  # the child keeps its own copy of the descriptor
        watched = [arg for ns in self.namespaces for arg in ("--namespace", ns)]
        endpoints = []
        if self.endpoints_port is not None:
            address = f"127.0.0.1:{self.endpoints_port}"
            endpoints = [f"--metrics-address={address}", f"--readiness=http://{address}/readyz"]
        command = [sys.executable, "-m", "bluegreen", *watched, f"--liveness={url}"]
        self.proc = subprocess.Popen(
            [*command, *endpoints, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        wait_for(lambda: self._healthy(url), timeout=30, what="the operator's liveness endpoint")

    def _healthy(self, url: str) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    def get(self, path: str) -> tuple[int, str]:
        """GET on the metrics and readiness server: status and body."""
        assert self.endpoints_port is not None, "started without endpoints=True"
        url = f"http://127.0.0.1:{self.endpoints_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as err:
            with err:
                return int(err.code), err.read().decode()

    def scrape(self) -> dict[str, float]:
        """Every sample of /metrics, keyed as the exposition writes it, e.g.
        ``bluegreen_apps{phase="Healthy"}`` (labels sorted by name)."""
        status, body = self.get("/metrics")
        assert status == 200, body
        return {
            _series(sample.name, sample.labels): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def readiness(self) -> tuple[int, str]:
        return self.get("/readyz")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
