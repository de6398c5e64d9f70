"""The operator as a real process, as users run it (``python -m bluegreen``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from kubehelpers import wait_for


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
    ) -> None:
        self.namespace = namespace
        self.args = args
        self.namespaces = (namespace, *more_namespaces)
        self.log_path = log_path
        self.env = {**os.environ, "BLUEGREEN_RESYNC_SECONDS": "20", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/healthz"
        log = self.log_path.open("ab")  # the child keeps its own copy of the descriptor
        watched = [arg for ns in self.namespaces for arg in ("--namespace", ns)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bluegreen", *watched, f"--liveness={url}", *self.args],
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
