"""Leader election on a coordination.k8s.io Lease, with fencing.

Replicas of the operator take turns: one leads and acts; the others wait, watching
nothing, until the lease is free. The rules follow client-go's leader election:

- Every write of the lease is a conditional PUT (resourceVersion): two candidates can never
  both believe they took it.
- A candidate takes a lease held by another only once it has seen the lease unchanged for
  ``lease_duration`` by its own clock (no clocks are compared across machines).
- The leader counts itself leading only until ``renew_deadline`` after the start of its
  last successful renewal. ``renew_deadline`` < ``lease_duration``, so a leader that could
  not renew (partitioned, or paused as by SIGSTOP) stops writing before anyone else may
  start: every write of the operator asks :meth:`LeaderElector.is_leading` first (fencing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bluegreen.core.clock import utcnow
from bluegreen.core.objects import Obj
from bluegreen.kube.client import Kube
from bluegreen.kube.errors import ApiError, Conflict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration"
            )


def micro_time() -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds."""
    return utcnow().isoformat(timespec="microseconds").replace("+00:00", "Z")


class LeaderElector:
    def __init__(
        self, kube: Kube, settings: LeaseSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``kube``: a facade without fencing (the lease's own writes must go through)."""
        self.kube = kube
        self.settings = settings
        self._clock = clock
        self._valid_until = float("-inf")
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = float("-inf")
        self._stop = threading.Event()
        self._last_round = float("-inf")

    # ------------------------------------------------------------------ the decision

    def is_leading(self) -> bool:
        return self._clock() < self._valid_until

    def tried_within(self, seconds: float) -> bool:
        """Whether a round began in the last ``seconds``: the election loop is not stuck
        (a standby's liveness)."""
        return self._clock() - self._last_round <= seconds

    def try_acquire_or_renew(self) -> bool:
        """One round: take the lease if it is free or expired, renew it if it is ours.
        True when this replica holds it now."""
        s = self.settings
        started = self._last_round = self._clock()
        try:
            lease = self.kube.get("Lease", s.namespace, s.name)
            if lease is None:
                self.kube.create(s.namespace, self._new_lease())
            else:
                if not self._may_take(lease):
                    return False
                self.kube.replace(s.namespace, self._taken(lease))
        except Conflict:
            return False  # someone else wrote it first; try next round
        except ApiError as err:
            log.warning("leader election: %s", err)
            return False
        except OSError as err:
            log.warning("leader election: the API server did not answer: %s", err)
            return False
        self._valid_until = started + s.renew_deadline
        return True

    def _may_take(self, lease: Obj) -> bool:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        seen = (holder, spec.get("renewTime"), lease["metadata"].get("resourceVersion"))
        if seen != self._observed:
            self._observed, self._observed_at = seen, self._clock()
        if not holder or holder == self.settings.identity:
            return True
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration)
        return self._clock() >= self._observed_at + duration

    def _new_lease(self) -> Obj:
        s = self.settings
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": int(s.lease_duration),
                "acquireTime": micro_time(),
                "renewTime": micro_time(),
                "leaseTransitions": 0,
            },
        }

    def _taken(self, lease: Obj) -> Obj:
        s = self.settings
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != s.identity:
            spec["acquireTime"] = micro_time()
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(
            holderIdentity=s.identity,
            leaseDurationSeconds=int(s.lease_duration),
            renewTime=micro_time(),
        )
        return {**lease, "spec": spec}

    # ------------------------------------------------------------------ the loops

    def acquire(self) -> bool:
        """Block until this replica leads (True), or :meth:`stop` was called (False)."""
        log.info("leader election: waiting for lease %s/%s", *self._where())
        while not self._stop.is_set():
            if self.try_acquire_or_renew():
                log.info("leader election: %s leads", self.settings.identity)
                return True
            self._stop.wait(self.settings.retry_period)
        return False

    def keep_renewing(self, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew in a thread; call ``on_lost`` once leading has ended (the lease went to
        another replica, or could not be renewed before the deadline)."""

        def run() -> None:
            while not self._stop.wait(self.settings.retry_period):
                renewed = self.try_acquire_or_renew()
                if not renewed and not self.is_leading():
                    log.error("leader election: lost lease %s/%s", *self._where())
                    on_lost()
                    return

        thread = threading.Thread(target=run, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def release(self) -> None:
        """Give the lease up at a clean shutdown, so a standby takes over at its next try
        instead of after the lease duration. Stops this replica's writes first."""
        self.stop()
        was_leading = self.is_leading()
        self._valid_until = float("-inf")
        if not was_leading:
            return
        s = self.settings
        try:
            lease = self.kube.get("Lease", s.namespace, s.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == s.identity:
                spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
                self.kube.replace(s.namespace, {**lease, "spec": spec})
                log.info("leader election: released lease %s/%s", *self._where())
        except (ApiError, OSError) as err:
            log.warning("leader election: could not release the lease: %s", err)

    def _where(self) -> tuple[str, str]:
        return self.settings.namespace, self.settings.name
