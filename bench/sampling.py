"""Where a running operator's CPU goes: py-spy samples of one phase of a benchmark, read
into the shares of its threads and the functions that hold them.

    with Sampled(pid, out_dir / "release.txt") as sampled:  # py-spy on PATH, or nothing
        ...
    print(summary(sampled.path))

py-spy (``pip install py-spy``; it reads the process's memory, so it needs ptrace rights:
root, or the same user with ``kernel.yama.ptrace_scope`` 0) samples every thread's Python
stack without stopping the process (``--nonblocking``), and only the thread that holds the
GIL (``--gil``): the Python code running, not threads waiting for the GIL (without it, a
thread waiting to take the GIL back after a socket send was sampled as running, a quarter of
the samples). Samples whose innermost frame waits all the same (a socket read, a select, a
lock) are counted apart as ``waiting``; the shares by thread and function are of the rest:
where the CPU goes, as near as sampling tells.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

RATE = 50  # samples per second: enough for shares of a minutes-long phase, little overhead
# Innermost frames that wait for the network, another thread or a timer, not compute.
WAITING = re.compile(
    r"^(SSLSocket\.(read|recv_into)|SocketIO\.readinto|\w*Selector\.select|"
    r"poll_wait_for_socket\.<locals>\.do_poll|Condition\.wait|Event\.wait|"
    r"Thread\._wait_for_tstate_lock|Queue\.get|sleep) "
)
# Frames every thread's stack begins with: not where the time goes.
BOOTSTRAP = re.compile(r"^(Thread\.|_bootstrap|_worker \(concurrent|run \(concurrent)")


class Sampled:
    """py-spy recording one process for the duration of a ``with`` block into ``path``;
    nothing at all (``path`` None) when none is given or py-spy is not installed."""

    def __init__(self, pid: int, path: Path | None) -> None:
        if path is not None and shutil.which("py-spy") is None:
            print("py-spy is not on PATH: no samples", flush=True)
            path = None
        self.pid, self.path = pid, path
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sampled:
        if self.path is not None:
            self._proc = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(self.pid),
                    "--nonblocking",
                    "--threads",
                    "--gil",
                    "--rate",
                    str(RATE),
                    "--format",
                    "raw",
                    "--output",
                    str(self.path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def thread_group(name: str) -> str:
    """A thread's name without the number that tells workers of one pool apart
    ("reconcile_3" -> "reconcile", "ThreadPoolExecutor-0_1" -> "ThreadPoolExecutor")."""
    return re.sub(r"([-_]\d+)+$", "", name)


def function_of(frame: str) -> str:
    """``name (file.py:123)`` -> ``name (file.py)``: one function, whatever line runs."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def read_stacks(path: Path) -> list[tuple[str, list[str], int]]:
    """py-spy's raw output: (thread group, frames outermost first, samples) per line."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, *frames = stack.split(";")
        name = thread.split(": ", 1)[1] if ": " in thread else thread
        useful = [function_of(f) for f in frames if not BOOTSTRAP.match(f)]
        stacks.append((thread_group(name), useful, int(count)))
    return stacks


def summary(path: Path | None, top: int = 15) -> dict[str, Any]:
    """Samples by thread group, by the function running (self) and by every function on
    the stack (inclusive, each counted once per stack), the largest first, as shares of
    the samples that were not waiting (``waiting``: the share of all that were)."""
    if path is None or not path.exists():
        return {}
    stacks = read_stacks(path)
    everything = sum(n for _, _, n in stacks) or 1
    # A stack of the threads' own start only waits in C (a worker's empty work queue).
    stacks = [s for s in stacks if s[1] and not WAITING.match(s[1][-1])]
    total = sum(n for _, _, n in stacks) or 1
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for thread, frames, n in stacks:
        threads[thread] += n
        own[frames[-1]] += n
        for function in set(frames):
            inclusive[function] += n

    def shares(counts: Counter[str]) -> dict[str, float]:
        return {k: round(v / total, 3) for k, v in counts.most_common(top)}

    return {
        "samples": everything,
        "waiting": round(1 - total / everything, 3),
        "threads": shares(threads),
        "self": shares(own),
        "inclusive": shares(inclusive),
    }
