"""Small helpers shared by the tests that talk to the local control plane."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import kubernetes

T = TypeVar("T")


@dataclass(frozen=True)
class KubeCluster:
    """What the ``kube_cluster`` fixture returns."""

    kubeconfig: Path  # admin (system:masters) kubeconfig, also in $KUBECONFIG
    bin_dir: Path  # kubectl, kube-apiserver, ... (first on $PATH during the session)

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new admin client of the official ``kubernetes`` package (close it, or use
        ``with``)."""
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "the condition",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    An exception raised by the predicate counts as "not yet" (the API may lag behind);
    after ``timeout`` seconds an AssertionError names ``what`` and the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def dns_label(text: str, max_len: int = 63) -> str:
    """A unique, valid DNS-1123 label derived from ``text`` (e.g. a test name)."""
    suffix = secrets.token_hex(3)
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    base = base[: max_len - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


class Sampler(Generic[T]):
    """Calls ``sample`` every ``interval`` seconds (0: again at once) in a thread while in its
    ``with`` block: ``values`` in order, ``times`` (time.monotonic()) beside them, and the
    ``errors`` of the calls that failed."""

    def __init__(self, sample: Callable[[], T], interval: float) -> None:
        self.sample, self.interval = sample, interval
        self.values: list[T] = []
        self.times: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler[T]:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                value = self.sample()
            except Exception as exc:  # kept, so a test sees a gap in its samples
                self.errors.append(repr(exc))
                continue
            self.times.append(time.monotonic())
            self.values.append(value)
