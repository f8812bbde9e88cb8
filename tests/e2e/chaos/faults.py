"""A TCP relay between two processes that can lose the answers: the request reaches the server and
takes effect, the client's connection is closed before any byte of the response comes back (what
a server SIGKILLed between its commit and its answer, or a dropped network path, looks like)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class LossyRelay:
    """Relays 127.0.0.1:`port` to 127.0.0.1:`target`; while `lose` is set, answers are dropped."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.lose = threading.Event()
        self.lost = 0  # connections whose answer was dropped
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers and self.lose.is_set():
                    self.lost += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @contextlib.contextmanager
    def losing(self) -> Iterator[None]:
        """Drop every answer inside the block."""
        self.lose.set()
        try:
            yield
        finally:
            self.lose.clear()

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
