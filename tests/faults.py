"""Fault injection for the reliability tests: an HTTP-aware TCP proxy, Postgres restarts.

``FaultProxy`` listens on 127.0.0.1 and forwards each HTTP/1.1 request of a client connection to
the gateway on a fresh upstream connection. The test arms faults that fire on the next matching
request (``arm``), or takes the whole link down (``set_offline``):

=================  ============================================================================
``drop_request``   the request is read, then the client connection is closed; nothing forwarded
``drop_response``  the request is forwarded and the whole response read (the server committed),
                   then the client connection is closed without sending it
``delay``          the request waits ``delay`` seconds before it is forwarded (longer than the
                   client's timeout: the client gives up while the server still commits)
``reset``          the connection is reset (RST: ``SO_LINGER`` 0) before the request is forwarded
``reset_after``    the request is forwarded and answered, then the connection is reset
``blackhole``      the connection stays open and nothing is answered; the client's timeout fires
=================  ============================================================================

Offline modes: ``"reset"`` (every connection is accepted and reset at once: a fast
"network unreachable") and ``"blackhole"`` (accepted, never answered).

Synchronisation is by threads, events and a condition; every loop is bounded and stops by itself
(connections are held at most ``hold`` seconds, ``close()`` wakes everything).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FAULT_KINDS", "Fault", "FaultProxy", "restart_postgres"]

FAULT_KINDS = ("drop_request", "drop_response", "delay", "reset", "reset_after", "blackhole")
_MAX_HEAD = 64 * 1024
_MAX_REQUESTS_PER_CONNECTION = 10_000


@dataclass
class Fault:
    """A one-shot fault: fires on the ``skip``-th next request whose path contains ``match``."""

    kind: str
    match: str = ""
    skip: int = 0
    delay: float = 0.0
    fired: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {FAULT_KINDS}")


class _Closed(Exception):
    """The peer closed the connection (or it broke) while we were reading."""


def _recv_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed()
        buf.extend(chunk)
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _read_message(sock: socket.socket, buf: bytearray, *, response: bool) -> tuple[bytes, bytes]:
    """One HTTP/1.1 message (head, whole bytes) from ``sock``; ``buf`` keeps what was read beyond it."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > _MAX_HEAD:
            raise _Closed()
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed()
        buf.extend(chunk)
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    del buf[:end]
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower()] = v.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = bytearray()
        while True:  # bounded by the peer's bytes: each round consumes one chunk
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise _Closed()
                buf.extend(chunk)
            i = buf.index(b"\r\n")
            size = int(bytes(buf[:i]).split(b";")[0], 16)
            body.extend(_recv_exact(sock, buf, i + 2 + size + 2))
            if size == 0:
                return head, head + bytes(body)
    length = int(headers.get(b"content-length", b"0"))
    if response and b"content-length" not in headers:
        rest = bytearray(buf)
        buf.clear()
        while True:  # HTTP/1.0 style: the body runs to the close
            chunk = sock.recv(65536)
            if not chunk:
                return head, head + bytes(rest)
            rest.extend(chunk)
    return head, head + _recv_exact(sock, buf, length)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """A TCP proxy between HTTP clients and ``upstream`` (``host:port``) that injects faults on demand."""

    def __init__(self, upstream: str, *, hold: float = 30.0) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host or "127.0.0.1", int(port))
        self.hold = hold
        self._cond = threading.Condition()
        self._faults: list[Fault] = []
        self._offline: str | None = None
        self._closing = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.fired: Counter[str] = Counter()  # faults that fired, by kind ("offline" for refused calls)
        self.requests = 0  # requests seen
        self.forwarded = 0  # requests that reached the server
        self.answered = 0  # responses read back from the server (sent on or not)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)
        self._accept_thread.start()

    @classmethod
    def to(cls, api_url: str, **kwargs: float) -> FaultProxy:
        """A proxy in front of ``http://host:port``."""
        return cls(api_url.split("://", 1)[-1].rstrip("/"), **kwargs)

    # -- control ----------------------------------------------------------------------------------
    def arm(self, kind: str, *, match: str = "", skip: int = 0, delay: float = 0.0) -> Fault:
        """Queue a one-shot fault for the ``skip``-th next request whose path contains ``match``."""
        fault = Fault(kind, match, skip, delay)
        with self._cond:
            self._faults.append(fault)
        return fault

    def disarm(self) -> list[Fault]:
        """Drop every armed fault that has not fired; returns them."""
        with self._cond:
            left, self._faults = self._faults, []
        return left

    def set_offline(self, mode: str | None) -> None:
        """``"reset"`` / ``"blackhole"``: every new request fails that way; None: back online."""
        if mode not in (None, "reset", "blackhole"):
            raise ValueError(mode)
        with self._cond:
            self._offline = mode
            self._cond.notify_all()  # wakes black-holed connections so they close

    @property
    def offline(self) -> str | None:
        return self._offline

    @property
    def faults_fired(self) -> int:
        with self._cond:
            return sum(self.fired.values())

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        with self._cond:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(5)
        for t in list(self._threads):
            t.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the proxy --------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._cond:
                self._conns.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(t)
            t.start()

    def _take_fault(self, path: str) -> Fault | None:
        with self._cond:
            for f in self._faults:
                if f.match in path:
                    if f.skip > 0:
                        f.skip -= 1
                        continue
                    self._faults.remove(f)
                    self.fired[f.kind] += 1
                    return f
        return None

    def _hold(self, conn: socket.socket, until_online: bool) -> None:
        """Keep ``conn`` open and silent until the client gives up, the proxy closes, ``hold`` runs
        out or (``until_online``) the link comes back."""
        conn.settimeout(0.05)
        deadline = time.monotonic() + self.hold
        while time.monotonic() < deadline and not self._closing.is_set():
            if until_online and self._offline != "blackhole":
                return
            try:
                if not conn.recv(65536):
                    return  # the client closed (its timeout fired)
            except TimeoutError:
                continue
            except OSError:
                return

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            for _ in range(_MAX_REQUESTS_PER_CONNECTION):
                if self._closing.is_set():
                    return
                conn.settimeout(self.hold)
                try:
                    head, request = _read_message(conn, buf, response=False)
                except (_Closed, OSError, ValueError):
                    return
                path = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
                with self._cond:
                    self.requests += 1
                    offline = self._offline
                    if offline:
                        self.fired["offline"] += 1
                if offline == "reset":
                    _reset(conn)
                    return
                if offline == "blackhole":
                    self._hold(conn, until_online=True)
                    return
                fault = self._take_fault(path)
                kind = fault.kind if fault else "pass"
                if fault:
                    fault.fired.set()
                if kind == "drop_request":
                    return
                if kind == "reset":
                    _reset(conn)
                    return
                if kind == "blackhole":
                    self._hold(conn, until_online=False)
                    return
                if kind == "delay" and fault is not None:
                    if self._closing.wait(fault.delay):
                        return
                try:
                    response = self._forward(request)
                except (_Closed, OSError, ValueError):
                    return  # upstream failed: the client sees the connection close
                if kind == "drop_response":
                    return
                if kind == "reset_after":
                    _reset(conn)
                    return
                try:
                    conn.sendall(response)
                except OSError:
                    return
        finally:
            with self._cond:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=max(self.hold, 1.0)) as up:
            up.sendall(request)
            with self._cond:
                self.forwarded += 1
                self._cond.notify_all()
            _, response = _read_message(up, bytearray(), response=True)
            with self._cond:
                self.answered += 1
                self._cond.notify_all()
            return response

    def wait_answered(self, n: int, timeout: float = 10.0) -> bool:
        """Block until the server has answered ``n`` forwarded requests in all."""
        with self._cond:
            return self._cond.wait_for(lambda: self.answered >= n, timeout=timeout)


def restart_postgres(root: Path | None = None) -> float:
    """Restart the local stack's Postgres (``pg_ctl restart -m fast``: open sessions are cut);
    returns the seconds it took. The gateway's pool reconnects on its own."""
    from shopsync_stack.postgres import PG_BIN, Stack, find_project_root

    stack = Stack(root or find_project_root())
    t0 = time.monotonic()
    cmd = stack._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(stack.data_dir), "-l", str(stack.pg_log),
                              "-m", "fast", "-w", "-t", "60", "restart"])
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl restart failed: {done.stdout}{done.stderr}")
    return time.monotonic() - t0
