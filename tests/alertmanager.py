"""A real Alertmanager (Debian's, fetched by hack/alertmanager.sh) on 127.0.0.1, for the
notification tests: started with a receiver that drops everything, queried through its
v2 API."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubehelpers import wait_for
from operator_process import free_port

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "hack" / "alertmanager.sh"
CONFIG = "route:\n  receiver: discard\nreceivers:\n  - name: discard\n"


def binary() -> Path:
    found = subprocess.run([SCRIPT, "--print-bin-dir"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise RuntimeError("Alertmanager is not fetched: run `make alertmanager` first")
    return Path(found.stdout.strip()) / "alertmanager"


class Alertmanager:
    def __init__(self, url: str) -> None:
        self.url = url

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return list(json.load(response))


@contextmanager
def running(workdir: Path) -> Iterator[Alertmanager]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    log = (workdir / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binary()),
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (workdir / "alertmanager.log").read_text()
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)

    try:
        wait_for(ready, timeout=30, what="Alertmanager to be ready")
        yield Alertmanager(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
