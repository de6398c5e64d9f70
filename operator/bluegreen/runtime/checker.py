"""The check runner: sends the HTTP checks' requests and the Prometheus checks' queries,
off the reconcile path.

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

A Prometheus check's query goes to its server's ``/api/v1/query``, bounded by its
``timeoutSeconds`` (on the socket, and as the query's own ``timeout``); its answer is
judged in :mod:`bluegreen.core.promql`. Credentials come from the named Secret, read
(``read_secret``, the API client's) for each query and kept nowhere.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from bluegreen.core import gates, promql
from bluegreen.core.gates import Probe, RunKey, Tally, Verdict
from bluegreen.core.objects import Key

log = logging.getLogger(__name__)

# What one probe reads of a body at most: a check looks for a substring, not a download.
MAX_BODY_BYTES = 64 * 1024
# What one query reads of an answer at most: a vector of a few thousand series.
MAX_QUERY_BYTES = 4 * 1024 * 1024
# A Secret's decoded data by (namespace, name); None when there is no such Secret.
SecretReader = Callable[[str, str], Mapping[str, str] | None]


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
    assert probe.http is not None
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


def query(probe: Probe, read_secret: SecretReader | None) -> Verdict:
    """One query of a Prometheus check, bounded by its timeout; no answer is an answer too
    (as the check's ``onError`` says: a failure, or nothing counted; never a success)."""
    assert probe.query is not None
    check = probe.query.check
    timeout = check.timeoutSeconds
    url = urlsplit(check.address)
    headers = {"User-Agent": "bluegreen-operator-check", "Accept": "application/json"}
    if check.auth is not None:
        try:
            if read_secret is None:
                raise LookupError("this runner reads no Secrets")
            secret = read_secret(probe.namespace, check.auth.secretName)
            headers["Authorization"] = promql.authorization(check, secret)
        except Exception as err:  # a refused read (Forbidden, say) is the check's error, shown
            return promql.unanswered(check, f"no credentials: {type(err).__name__}: {err}")
    where = f"{url.scheme}://{url.netloc}"
    path = url.path.rstrip("/") + "/api/v1/query?"
    path += urlencode({"query": probe.query.promql, "timeout": f"{timeout}s"})
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = kind(url.netloc, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read(MAX_QUERY_BYTES).decode(errors="replace")
        return promql.judge_answer(check, response.status, body)
    except TimeoutError:
        return promql.unanswered(check, f"no answer within {timeout}s from {where}")
    except (OSError, http.client.HTTPException) as err:
        return promql.unanswered(check, f"no answer from {where}: {type(err).__name__}: {err}")
    finally:
        conn.close()


@dataclass
class _Run:
    app: Key
    probe: Probe
    tally: Tally = field(default_factory=Tally)
    stop: threading.Event = field(default_factory=threading.Event)


class Checker:
    """The HTTP and Prometheus check runs of every app, each on its own daemon thread."""

    def __init__(
        self,
        via_node_port: str | None = None,
        on_change: Callable[[Key], None] = lambda key: None,
        send: Callable[[Probe, str | None], Verdict] = send,
        query: Callable[[Probe, SecretReader | None], Verdict] = query,
        read_secret: SecretReader | None = None,
    ) -> None:
        self._via = via_node_port
        self._on_change = on_change
        self._send = send
        self._query = query
        self._read_secret = read_secret
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
            if probe.query is not None:
                answer = self._query(probe, self._read_secret)
            else:
                answer = self._send(probe, self._via)
            with self._lock:
                if run.stop.is_set():
                    return
                before = run.tally
                run.tally = gates.fold(before, answer, probe.check, probe.key.stage)
                after = run.tally
            if _shows_differently(before, after, probe.key.stage):
                self._on_change(run.app)
            if after.state in gates.FINAL:
                check, state = probe.key.check, after.state
                log.info("%s/%s: check %s %s: %s", *run.app, check, state, after.message)
                return
            run.stop.wait(probe.check.intervalSeconds)


def _shows_differently(before: Tally, after: Tally, stage: str) -> bool:
    """Whether the app's status would change: before the switch every count shows; while
    prod is verified, only a state or a failure streak (not a success every interval), or
    the first value."""
    if stage == "preview":
        return before != after
    first_value = before.value is None and after.value is not None
    return (before.state, before.failures) != (after.state, after.failures) or first_value


class NoChecks(Checker):
    """For a caller with no runner (a one-off pass, a test): nothing is ever probed, so an
    HTTP check never passes; it is never started either."""

    def want(self, app: Key, probes: Sequence[Probe]) -> None:
        pass
