"""A local TCP relay that can really go offline: the demo's (and tests') way to cut a device's network.

``TcpRelay(("127.0.0.1", 54321))`` listens on a free local port and forwards every connection to
the target. :meth:`TcpRelay.go_offline` closes the listening socket and every open connection, so
a client pointed at :attr:`TcpRelay.url` gets ``connection refused`` (nothing in the client is
told or skipped); :meth:`TcpRelay.go_online` listens on the same port again.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

__all__ = ["TcpRelay"]


class TcpRelay:
    """Forwards ``127.0.0.1:<port>`` to ``target``; can be switched off and on (same port)."""

    def __init__(self, target: tuple[str, int], *, port: int = 0) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.port = port
        self.connections = 0  #: connections accepted so far
        self.go_online()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def online(self) -> bool:
        return self._listener is not None

    def go_online(self) -> None:
        """Listen (again) on :attr:`port` and forward new connections."""
        with self._lock:
            if self._listener is not None:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            self.port = sock.getsockname()[1]
            self._listener = sock
            t = threading.Thread(target=self._accept, args=(sock,), name=f"relay-{self.port}", daemon=True)
            t.start()
            self._threads.append(t)

    def go_offline(self) -> None:
        """Stop listening and cut every open connection: clients now get ``connection refused``."""
        with self._lock:
            sock, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for c in conns:
            _close(c)
        threads, self._threads = self._threads, []
        for t in threads:
            if t is not threading.current_thread():
                t.join(5)

    close = go_offline

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.go_offline()

    # -- plumbing ---------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: offline
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # went offline meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._conns.update((client, upstream))
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                t.start()
                with self._lock:
                    self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
