"""An open-loop HTTP load generator for the real-traffic tests and benchmark.

Open loop: request i is sent at ``start + i / rate`` whether or not earlier ones have
answered, as independent users would, so a stalled backend shows up as errors and
timeouts instead of silently slowing the generator down. Every request is recorded.

Bounded by design: it stops at ``max_requests``, at ``max_seconds``, or when told to, and
it refuses any destination outside 127.0.0.0/8 (load is only ever sent to this machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# Every connection of the generator starts from this address, which nothing else on the
# host uses. A connection attempt to a NodePort whose Service has no endpoints yet (a
# readiness poll such as realnode.answer) is rejected without NAT, and its conntrack entry
# stays in SYN_SENT for 120 s. A later SYN with the same 4-tuple is taken for a
# retransmission of that attempt: it skips the DNAT and is refused. The kernel hands out
# source ports per destination in sequence, so from the same address the generator walked
# into such ports within seconds (1-2 refused requests in most runs); from its own
# address its tuples can never be ones a poll left behind.
SOURCE = "127.0.0.2"


@dataclass(frozen=True)
class Result:
    """One request: when it was sent (seconds since the run started), its outcome."""

    sent: float
    done: float
    status: int | None
    version: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    started_wall: float = 0.0  # time.time() at sent == 0, to place API events on the same axis

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def versions(self) -> Counter[str | None]:
        return Counter(r.version for r in self.results if r.ok)

    def went_back(self, old: str, new: str, grace: float = 0.0) -> list[Result]:
        """Requests answered by ``old`` although they were sent (more than ``grace`` seconds)
        after some request had already been answered by ``new``: traffic that moved back."""
        first_new = min((r.done for r in self.results if r.ok and r.version == new), default=None)
        if first_new is None:
            return []
        since = first_new + grace
        return [r for r in self.results if r.ok and r.version == old and r.sent > since]


def _request(host: str, keepalive: bool) -> bytes:
    """The request line and headers: after the address in ``host``, the Host header (a
    proxy routes by it) and extra headers, a newline each (see :func:`_address`)."""
    name, *extra = host.split("|", 1)[-1].split("\n")
    lines = [f"Host: {name}", *extra] + ([] if keepalive else ["Connection: close"])
    return ("GET / HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in lines) + "\r\n").encode()


async def _one(host: str, port: int, timeout: float, t0: float, keep: list[Result]) -> None:
    sent = time.monotonic() - t0
    status: int | None = None
    version: str | None = None
    error: str | None = None
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                _address(host), port, local_addr=(SOURCE, 0)
            )
            writer.write(_request(host, keepalive=False))
            await writer.drain()
            raw = await reader.read()
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        if len(status_line) < 2:
            error = "empty or malformed response"
        else:
            status = int(status_line[1])
            version = body.split(b" ", 1)[0].decode(errors="replace").strip() or None
    except TimeoutError:
        error = "timeout"
    except OSError as exc:
        error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    keep.append(Result(sent, time.monotonic() - t0, status, version, error))


async def _generate(
    host: str,
    port: int,
    rate: float,
    max_requests: int,
    max_seconds: float,
    timeout: float,
    stop: threading.Event,
    run: Run,
    started: Callable[[float], None],
) -> None:
    t0 = time.monotonic()
    run.started_wall = time.time()
    started(run.started_wall)
    tasks: set[asyncio.Task[None]] = set()
    for i in range(max_requests):
        at = i / rate
        if at > max_seconds or stop.is_set():
            break
        delay = t0 + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_one(host, port, timeout, t0, run.results))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


KEEPALIVE_CONNECTIONS = 10


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
) -> tuple[int, str | None, bool]:
    """One request on an open keep-alive connection: (status, version, server closes)."""
    writer.write(_request(host, keepalive=True))
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
    lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    version = body.split(b" ", 1)[0].decode(errors="replace").strip() or None
    return int(lines[0].split()[1]), version, headers.get("connection", "").lower() == "close"


async def _keepalive_connection(
    host: str,
    port: int,
    rate: float,
    max_seconds: float,
    timeout: float,
    t0: float,
    stop: threading.Event,
    keep: list[Result],
) -> None:
    """One client that keeps its connection open, paced at ``rate``. Like common HTTP
    clients it resends a request once on a fresh connection when a reused one turns out
    closed by the server before any answer (an idle connection closed at shutdown)."""
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    i = 0
    while not stop.is_set() and i / rate < max_seconds:
        delay = t0 + i / rate - time.monotonic()
        i += 1
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.monotonic() - t0
        status: int | None = None
        version: str | None = None
        error: str | None = None
        for attempt in (1, 2):
            reused = conn is not None
            try:
                async with asyncio.timeout(timeout):
                    if conn is None:
                        conn = await asyncio.open_connection(
                            _address(host), port, local_addr=(SOURCE, 0)
                        )
                    status, version, closes = await _exchange(*conn, host)
                error = None
                if closes:
                    conn[1].close()
                    conn = None
                break
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                error = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                if conn is not None:
                    conn[1].close()
                conn = None
                stale = reused and isinstance(exc, (asyncio.IncompleteReadError, OSError))
                if not (stale and attempt == 1):
                    break
        keep.append(Result(sent, time.monotonic() - t0, status, version, error))
    if conn is not None:
        conn[1].close()


async def _generate_keepalive(
    host: str,
    port: int,
    rate: float,
    max_seconds: float,
    timeout: float,
    stop: threading.Event,
    run: Run,
    started: Callable[[float], None],
) -> None:
    t0 = time.monotonic()
    run.started_wall = time.time()
    started(run.started_wall)
    per_conn = rate / KEEPALIVE_CONNECTIONS
    await asyncio.gather(
        *(
            _keepalive_connection(
                host, port, per_conn, max_seconds, timeout, t0 + k / rate, stop, run.results
            )
            for k in range(KEEPALIVE_CONNECTIONS)
        )
    )


class LoadGenerator:
    """Runs the generator in its own process: ``start()``, act on the cluster, ``stop()``.

    Its own process, so the test's API calls (the kubernetes client parses JSON under the
    GIL) cannot delay its sends; and a niceness of -5 where allowed, so that on a busy
    2-core machine the instrument is not what stalls (the pods, kube-proxy and the
    operator keep their usual priority)."""

    def __init__(
        self,
        host: str,
        port: int,
        rate: float = 150,
        max_seconds: float = 120,
        timeout: float = 2.0,
        keepalive: bool = False,
        host_header: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``keepalive``: 10 clients that each keep one connection open, instead of a new
        connection per request. ``host_header`` (default ``host``) and ``headers``: what
        each request says, for a proxy that routes by hostname and header."""
        if ipaddress.ip_address(host) not in LOOPBACK:
            raise ValueError(f"load goes only to 127.0.0.0/8, not to {host}")
        mode = "keepalive" if keepalive else "new"
        said = "\n".join([host_header or host, *(f"{k}: {v}" for k, v in (headers or {}).items())])
        self.args = [host, str(port), str(rate), str(max_seconds), str(timeout), mode, said]
        self.max_seconds, self.timeout = max_seconds, timeout
        self.run = Run()
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> LoadGenerator:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, *self.args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        first = self._proc.stdout.readline().split()
        assert first[:1] == ["started"], f"the load generator did not start: {first}"
        self.run.started_wall = float(first[1])
        return self

    def elapsed(self) -> float:
        """Seconds since the run started, on the axis of ``Result.sent``."""
        return time.time() - self.run.started_wall

    def stop(self) -> Run:
        assert self._proc is not None, "not started"
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        out, _ = self._proc.communicate(timeout=self.timeout + 30)
        assert self._proc.returncode == 0, f"the load generator failed: {self._proc.returncode}"
        self.run.results = sorted((Result(*row) for row in json.loads(out)), key=lambda r: r.sent)
        return self.run

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _address(host: str) -> str:
    """Where to connect: the address the generator was given, before the Host header
    and headers it says (``"127.0.0.1|web.test\nX-Preview: true"``)."""
    return host.split("|", 1)[0]


def _child(
    host: str, port: str, rate: str, max_seconds: str, timeout: str, mode: str, said: str = ""
) -> None:
    """The generator process: prints ``started <wall time>``, sends until SIGTERM or its
    bounds, then prints every result as one JSON list."""
    with contextlib.suppress(OSError):
        os.nice(-5)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run = Run()
    rate_f, seconds = float(rate), float(max_seconds)
    host = f"{host}|{said or host}"

    def started(wall: float) -> None:
        print(f"started {wall}", flush=True)

    if mode == "keepalive":
        asyncio.run(
            _generate_keepalive(
                host, int(port), rate_f, seconds, float(timeout), stop, run, started
            )
        )
    else:
        asyncio.run(
            _generate(
                host,
                int(port),
                rate_f,
                int(rate_f * seconds) + 1,
                seconds,
                float(timeout),
                stop,
                run,
                started,
            )
        )
    json.dump([[r.sent, r.done, r.status, r.version, r.error] for r in run.results], sys.stdout)


def per_second(
    run: Run, start: float = 0.0, end: float | None = None
) -> list[tuple[int, int, int, Counter[str]]]:
    """(second, successes, failures, versions answered) for each second of sending time."""
    last = int(max((r.sent for r in run.results), default=0)) if end is None else int(end)
    rows = []
    for s in range(int(start), last + 1):
        in_s = [r for r in run.results if s <= r.sent < s + 1]
        ok = [r for r in in_s if r.ok]
        rows.append((s, len(ok), len(in_s) - len(ok), Counter(str(r.version) for r in ok)))
    return rows


if __name__ == "__main__":
    _child(*sys.argv[1:8])
