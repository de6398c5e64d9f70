"""The check runner: sends the HTTP checks' requests, off the reconcile path.

A reconcile never waits for a check. It hands the runner the runs its plan wants probed
(:meth:`Checker.want`) and reads the tallies so far (:meth:`Checker.tallies`); each run
probes on a thread of its own, every ``intervalSeconds``, each request bounded by
``timeoutSeconds``, and wakes its app (``on_change``) when what the status shows changes.
A run that passed or failed stops probing; a run no plan wants any more is dropped.

Where a check is sent: in the cluster, to the Service's DNS name and port
(``<service>.<namespace>.svc:<port>``). An operator running outside the cluster cannot
reach Services; given ``via_node_port=HOST`` (``--checks-via-node-port``) it sends each
check to ``HOST:<the Service port's nodePort>`` instead (the Service must then be of type
NodePort): what the tests do, with kube-proxy serving node ports on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bluegreen.core import gates
from bluegreen.core.gates import Probe, RunKey, Tally, Verdict
from bluegreen.core.objects import Key

log = logging.getLogger(__name__)

# What one probe reads of a body at most: a check looks for a substring, not a download.
MAX_BODY_BYTES = 64 * 1024


def address(probe: Probe, via_node_port: str | None) -> tuple[str, int]:
    """Where to send ``probe``: the Service's DNS name, or HOST and its node port."""
    if via_node_port is None:
        return f"{probe.service}.{probe.namespace}.svc", probe.port
    if probe.node_port is None:
        raise LookupError(
            f"Service {probe.service} port {probe.port} has no node port "
            "(checks are sent through node ports: the Service must be of type NodePort)"
        )
    return via_node_port, probe.node_port


def send(probe: Probe, via_node_port: str | None) -> Verdict:
    """One request of a check, bounded by its timeout; any failure is an answer too."""
    timeout = probe.http.timeoutSeconds
    try:
        host, port = address(probe, via_node_port)
    except LookupError as err:
        return Verdict(False, str(err))
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", probe.http.path, headers={"User-Agent": "bluegreen-operator-check"})
        response = conn.getresponse()
        body = response.read(MAX_BODY_BYTES).decode(errors="replace")
        return gates.judge_response(probe.http, response.status, body)
    except TimeoutError:
        return Verdict(False, f"no answer within {timeout}s from {host}:{port}")
    except (OSError, http.client.HTTPException) as err:
        return Verdict(False, f"no answer from {host}:{port}: {type(err).__name__}: {err}")
    finally:
        conn.close()


@dataclass
class _Run:
    app: Key
    probe: Probe
    tally: Tally = field(default_factory=Tally)
    stop: threading.Event = field(default_factory=threading.Event)


class Checker:
    """The HTTP check runs of every app, each probing on its own daemon thread."""

    def __init__(
        self,
        via_node_port: str | None = None,
        on_change: Callable[[Key], None] = lambda key: None,
        send: Callable[[Probe, str | None], Verdict] = send,
    ) -> None:
        self._via = via_node_port
        self._on_change = on_change
        self._send = send
        self._lock = threading.Lock()
        self._runs: dict[tuple[Key, RunKey], _Run] = {}

    def tallies(self, app: Key) -> dict[RunKey, Tally]:
        """Where each run of ``app`` stands."""
        with self._lock:
            return {k: run.tally for (a, k), run in self._runs.items() if a == app}

    def want(self, app: Key, probes: Sequence[Probe]) -> None:
        """Probe exactly these runs of ``app``: start the new ones, stop the others. A run
        already under way keeps its tally (and takes the probe's latest settings)."""
        wanted = {(app, p.key): p for p in probes}
        with self._lock:
            for id_, run in list(self._runs.items()):
                if id_[0] == app and id_ not in wanted:
                    run.stop.set()
                    del self._runs[id_]
            started: list[_Run] = []
            for id_, probe in wanted.items():
                existing = self._runs.get(id_)
                if existing is not None:
                    existing.probe = probe
                    continue
                self._runs[id_] = _Run(app, probe)
                started.append(self._runs[id_])
        for run in started:
            name = f"check-{app[1]}-{run.probe.key.check}"
            thread = threading.Thread(target=self._probe_until_done, args=(run,), name=name)
            thread.daemon = True
            thread.start()

    def forget(self, app: Key) -> None:
        self.want(app, ())

    def stop_all(self) -> None:
        with self._lock:
            for run in self._runs.values():
                run.stop.set()
            self._runs.clear()

    @property
    def running(self) -> int:
        with self._lock:
            return sum(1 for run in self._runs.values() if run.tally.state not in gates.FINAL)

    def _probe_until_done(self, run: _Run) -> None:
        while not run.stop.is_set():
            probe = run.probe
            answer = self._send(probe, self._via)
            with self._lock:
                if run.stop.is_set():
                    return
                before = run.tally
                run.tally = gates.fold(before, answer, probe.http, probe.key.stage)
                after = run.tally
            if _shows_differently(before, after, probe.key.stage):
                self._on_change(run.app)
            if after.state in gates.FINAL:
                check, state = probe.key.check, after.state
                log.info("%s/%s: check %s %s: %s", *run.app, check, state, after.message)
                return
            run.stop.wait(probe.http.intervalSeconds)


def _shows_differently(before: Tally, after: Tally, stage: str) -> bool:
    """Whether the app's status would change: before the switch every count shows; while
    prod is verified, only a state or a failure streak (not a success every interval)."""
    if stage == "preview":
        return before != after
    return (before.state, before.failures) != (after.state, after.failures)


class NoChecks(Checker):
    """For a caller with no runner (a one-off pass, a test): nothing is ever probed, so an
    HTTP check never passes; it is never started either."""

    def want(self, app: Key, probes: Sequence[Probe]) -> None:
        pass
