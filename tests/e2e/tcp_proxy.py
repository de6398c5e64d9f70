"""A loopback TCP proxy the test controls: put between one client and the API server, it
injects network faults that hit that client only.

- ``refuse()``: the API server is gone: open connections are reset, new ones refused.
- ``blackhole()``: connections go silently dead: new ones are accepted, nothing is
  forwarded either way, nothing is closed (no error, no timeout but the client's own).
- ``restore()``: new connections are forwarded again; the ones from a blackhole stay
  silently dead, as through a NAT or load balancer that lost them (nothing answers and
  nothing resets them): only the client's own timeouts get it out.

It listens on 127.0.0.1 only and forwards only to the upstream it was given.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Literal

Mode = Literal["forward", "refuse", "blackhole"]
_POLL = 0.1  # how often an idle pump looks at the mode


def _reset(sock: socket.socket) -> None:
    """Close with an RST, not a FIN: what a vanished peer looks like."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode: Mode = "forward"
        self._lock = threading.Lock()
        self._faulted: list[socket.socket] = []  # blackholed: dead until the proxy closes
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self.port = self._listen(0)

    # ---------------------------------------------------------------- control

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def refuse(self) -> None:
        with self._lock:
            self.mode = "refuse"
            listener, self._listener = self._listener, None
            victims, self._open = list(self._open), set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, stops listening
            listener.close()
        for sock in victims:
            _reset(sock)

    def blackhole(self) -> None:
        with self._lock:
            self.mode = "blackhole"
            self._faulted.extend(self._open)

    def restore(self) -> None:
        with self._lock:
            was_listening = self._listener is not None
            self.mode = "forward"
        if not was_listening:
            self._listen(self.port)

    def close(self) -> None:
        self._stopped.set()
        self.refuse()
        with self._lock:
            dead, self._faulted = self._faulted, []
        for sock in dead:
            _reset(sock)

    # ---------------------------------------------------------------- plumbing

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return int(listener.getsockname()[1])

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: refusing
            with self._lock:
                if self.mode == "blackhole":
                    self._faulted.append(client)  # held open, never answered
                    continue
                self._open.add(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._drop(client)
            return
        with self._lock:
            if client not in self._open:  # faulted meanwhile
                _reset(server)
                return
            self._open.add(server)
            if self.mode == "blackhole":
                self._faulted.append(server)
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(_POLL)
        while True:
            with self._lock:
                alive = src in self._open or src in self._faulted
                holding = self.mode == "blackhole" or src in self._faulted
            if not alive:
                return
            if holding:
                time.sleep(_POLL)  # data waits in the kernel's buffers, unanswered
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self._drop(src, dst)
                return
            try:
                dst.sendall(data)
            except OSError:
                self._drop(src, dst)
                return

    def _drop(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
