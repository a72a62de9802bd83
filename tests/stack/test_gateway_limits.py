"""The gateway as an HTTP server under hostile clients (issue 12, finding 9): body limits checked
before the body is read, authentication first, chunked bodies, bad Content-Length, read and idle
timeouts (slowloris), no thread per connection, PostgREST's answer to pool exhaustion, strict JWTs.

Most tests drive a gateway of their own (same code, same database, its own port) started with small
limits and timeouts from the environment, and speak raw HTTP/1.1 over a socket so that every byte
and every pause is the test's choice.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from shopsync_stack import tokens
from shopsync_stack.settings import StackSettings

from ..conftest import User

ROOT = Path(__file__).resolve().parents[2]
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"

BODY_LIMIT = 1 << 20
ANON_BODY_LIMIT = 4096
HEADER_TIMEOUT = 1.0
READ_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
IDLE_TIMEOUT = 1.5
POOL_TIMEOUT = 0.5

local_only = pytest.mark.local_stack


@dataclass
class Gw:
    port: int
    pid: int
    log: Path

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gw(settings: StackSettings) -> Iterator[Gw]:
    """A gateway of this module's own, with small limits and a one-connection pool."""
    port = _free_port()
    env = {
        **os.environ,
        "SHOPSYNC_PROJECT_DIR": str(ROOT),
        "SHOPSYNC_API_PORT": str(port),
        "SHOPSYNC_GATEWAY_DB_URL": make_conninfo(settings.db_url, user="authenticator", password="postgres"),
        "SHOPSYNC_GATEWAY_BODY_LIMIT": str(BODY_LIMIT),
        "SHOPSYNC_GATEWAY_ANON_BODY_LIMIT": str(ANON_BODY_LIMIT),
        "SHOPSYNC_GATEWAY_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "SHOPSYNC_GATEWAY_READ_TIMEOUT": str(READ_TIMEOUT),
        "SHOPSYNC_GATEWAY_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "SHOPSYNC_GATEWAY_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "SHOPSYNC_GATEWAY_POOL_SIZE": "1",
        "SHOPSYNC_GATEWAY_POOL_TIMEOUT": str(POOL_TIMEOUT),
    }
    log = Path(tempfile.mkstemp(prefix="shopsync-gw-limits-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "shopsync_stack.gateway"], env=env, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test gateway did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield Gw(port, proc.pid, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


# -- raw HTTP ---------------------------------------------------------------------------------------
def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """One response (Content-Length framed, or up to EOF); raises TimeoutError if none in time."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response; got {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:n]
    else:
        while chunk := sock.recv(65536):
            rest += chunk
        body = rest
    return int(status_line.split()[1]), headers, body


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closes the connection within ``seconds`` (whatever it sends first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def _error_body(body: bytes) -> dict[str, object]:
    out = json.loads(body)
    assert isinstance(out, dict) and {"code", "message", "details", "hint"} <= set(out), out
    return out


def _auth(token: str, anon_key: str) -> dict[str, str]:
    return {"apikey": anon_key, "Authorization": f"Bearer {token}", "Content-Type": "application/json"}


# -- body limits, authentication first -------------------------------------------------------------
@local_only
def test_content_length_over_the_limit_is_413_before_the_body_is_sent(
    gw: Gw, make_user: Callable[..., User], settings: StackSettings
) -> None:
    user = make_user()
    with gw.connect() as sock:
        t0 = time.monotonic()
        sock.sendall(_head("POST", "/rest/v1/rpc/health",
                           {**_auth(user.token, settings.anon_key), "Content-Length": str(BODY_LIMIT + 1)}))
        status, headers, body = _read_response(sock, timeout=3)  # no body byte was sent
        assert status == 413
        assert time.monotonic() - t0 < 2
        assert _error_body(body)["code"] == "REQUEST_TOO_LARGE"
        assert headers.get("access-control-allow-origin") == "*"
        assert _closed_within(sock, 3)


@local_only
def test_a_bad_token_is_401_before_the_body_is_read(gw: Gw, settings: StackSettings) -> None:
    with gw.connect() as sock:
        sock.sendall(_head("POST", "/rest/v1/rpc/health",
                           {**_auth("not.a.jwt", settings.anon_key), "Content-Length": str(50 << 20)}))
        status, _, body = _read_response(sock, timeout=3)
        assert status == 401
        assert _error_body(body)["code"] == "PGRST301"


@local_only
def test_unauthenticated_requests_get_a_much_smaller_allowance(
    gw: Gw, make_user: Callable[..., User], settings: StackSettings
) -> None:
    body = json.dumps({"pad": "x" * (ANON_BODY_LIMIT + 100)}).encode()
    assert len(body) < BODY_LIMIT
    for headers in ({"apikey": settings.anon_key}, {}):  # the anon key, and no token at all
        with gw.connect() as sock:
            sock.sendall(_head("POST", "/rest/v1/rpc/health", {**headers, "Content-Type": "application/json",
                                                               "Content-Length": str(len(body))}))
            status, _, out = _read_response(sock, timeout=3)
            assert status == 413, out
    user = make_user()
    resp = httpx.post(f"http://127.0.0.1:{gw.port}/rest/v1/rpc/health", content=body,
                      headers=_auth(user.token, settings.anon_key))
    assert resp.status_code == 404 and resp.json()["code"] == "PGRST202"  # read, then no such signature


@local_only
def test_a_chunked_body_over_the_limit_is_cut_at_the_limit_with_413(
    gw: Gw, make_user: Callable[..., User], settings: StackSettings
) -> None:
    user = make_user()
    with gw.connect() as sock:
        sock.sendall(_head("POST", "/rest/v1/rpc/health",
                           {**_auth(user.token, settings.anon_key), "Transfer-Encoding": "chunked"}))
        piece = b"x" * 65536
        sent = 0
        try:
            while sent < 4 * BODY_LIMIT:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent <= 4 * BODY_LIMIT
        status, _, body = _read_response(sock, timeout=5)
        assert status == 413
        assert _error_body(body)["code"] == "REQUEST_TOO_LARGE"


# -- framing ------------------------------------------------------------------------------------------
@local_only
def test_chunked_request_bodies_are_read_correctly(
    gw: Gw, make_user: Callable[..., User], settings: StackSettings, sql_function: Callable[[str, str], None],
    db: psycopg.Connection,
) -> None:
    sql_function("test_gw_chunked(n integer, word text)",
                 "returns text language sql stable as $$ select word || ':' || (n * 2)::text $$")
    db.execute("grant execute on function public.test_gw_chunked(integer, text) to anon, authenticated")
    user = make_user()
    payload = json.dumps({"n": 21, "word": "answer"}).encode()
    with gw.connect() as sock:
        for _ in range(2):  # the connection stays usable: the body was consumed exactly
            sock.sendall(_head("POST", "/rest/v1/rpc/test_gw_chunked",
                               {**_auth(user.token, settings.anon_key), "Transfer-Encoding": "chunked"}))
            for i in range(0, len(payload), 5):
                part = payload[i:i + 5]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
            status, _, body = _read_response(sock, timeout=5)
            assert (status, json.loads(body)) == (200, "answer:42")


@local_only
@pytest.mark.parametrize("value", ["-1", "12abc", "1e3", "99999999999999999999999999"])
def test_a_bad_content_length_is_400_at_once(gw: Gw, settings: StackSettings, value: str) -> None:
    with gw.connect() as sock:
        sock.sendall(_head("POST", "/rest/v1/rpc/health", {"apikey": settings.anon_key, "Content-Length": value}))
        sock.sendall(b"{}")
        t0 = time.monotonic()
        status, _, _ = _read_response(sock, timeout=3)
        assert status == 400
        assert time.monotonic() - t0 < 2
        assert _closed_within(sock, 3)


# -- timeouts -----------------------------------------------------------------------------------------
@local_only
def test_headers_sent_byte_by_byte_are_cut_off(gw: Gw, settings: StackSettings) -> None:
    request = _head("POST", "/rest/v1/rpc/health", {"apikey": settings.anon_key, "X-Pad": "y" * 200,
                                                     "Content-Length": "2"})
    with gw.connect() as sock:
        t0 = time.monotonic()
        closed = False
        for byte in request[:-4]:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed_within(sock, 0.1):
                closed = True
                break
            if time.monotonic() - t0 > HEADER_TIMEOUT + 3:
                break
        assert closed, "a client trickling its headers was never cut off"
        assert time.monotonic() - t0 < HEADER_TIMEOUT + 2


@local_only
def test_a_body_sent_byte_by_byte_is_cut_off(
    gw: Gw, make_user: Callable[..., User], settings: StackSettings
) -> None:
    user = make_user()
    with gw.connect() as sock:
        sock.sendall(_head("POST", "/rest/v1/rpc/health", {**_auth(user.token, settings.anon_key),
                                                           "Content-Length": "200"}))
        t0 = time.monotonic()
        closed = False
        for _ in range(200):
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed_within(sock, 0.3):
                closed = True
                break
            if time.monotonic() - t0 > BODY_TIMEOUT + 3:
                break
        assert closed, "a client trickling its body was never cut off"
        assert time.monotonic() - t0 < BODY_TIMEOUT + 2


@local_only
def test_a_silent_body_is_cut_off_after_the_read_timeout(
    gw: Gw, make_user: Callable[..., User], settings: StackSettings
) -> None:
    user = make_user()
    with gw.connect() as sock:
        sock.sendall(_head("POST", "/rest/v1/rpc/health", {**_auth(user.token, settings.anon_key),
                                                           "Content-Length": "20"}) + b"{")
        t0 = time.monotonic()
        status, _, body = _read_response(sock, timeout=READ_TIMEOUT + 3)
        assert status == 408 and _error_body(body)["code"] == "REQUEST_TIMEOUT"
        assert time.monotonic() - t0 < READ_TIMEOUT + 1.5


@local_only
def test_an_idle_keep_alive_connection_is_closed(gw: Gw, settings: StackSettings) -> None:
    with gw.connect() as sock:
        sock.sendall(_head("POST", "/rest/v1/rpc/health", {"apikey": settings.anon_key, "Content-Length": "2"}) + b"{}")
        status, headers, _ = _read_response(sock, timeout=5)
        assert status == 200 and headers.get("connection", "").lower() != "close"
        t0 = time.monotonic()
        assert _closed_within(sock, IDLE_TIMEOUT + 3)
        assert time.monotonic() - t0 > IDLE_TIMEOUT - 0.5


@local_only
def test_connections_do_not_each_take_a_thread(gw: Gw) -> None:
    socks = [gw.connect() for _ in range(100)]
    try:
        for s in socks:
            s.sendall(b"GET /health HTTP/1.1\r\n")  # accepted and mid-request
        time.sleep(0.3)
        status = Path(f"/proc/{gw.pid}/status").read_text()
        threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
        assert threads < 20, f"{threads} threads for 100 connections"
    finally:
        for s in socks:
            s.close()


# -- the pool -----------------------------------------------------------------------------------------
@local_only
def test_pool_exhaustion_is_504_pgrst003(
    gw: Gw, make_user: Callable[..., User], settings: StackSettings, sql_function: Callable[[str, str], None],
    db: psycopg.Connection,
) -> None:
    sql_function("test_gw_wait()",
                 "returns int language sql volatile as $$ select pg_advisory_xact_lock(424242); select 1 $$")
    db.execute("grant execute on function public.test_gw_wait() to anon, authenticated")
    user = make_user()
    url = f"http://127.0.0.1:{gw.port}/rest/v1/rpc"
    headers = _auth(user.token, settings.anon_key)
    first: list[httpx.Response] = []
    db.execute("select pg_advisory_lock(424242)")
    try:
        holder = threading.Thread(target=lambda: first.append(
            httpx.post(f"{url}/test_gw_wait", json={}, headers=headers, timeout=30)))
        holder.start()
        time.sleep(0.5)  # the only pooled connection now waits on the lock
        t0 = time.monotonic()
        resp = httpx.post(f"{url}/health", json={}, headers=headers, timeout=10)
        assert resp.status_code == 504
        assert resp.json() == {"code": "PGRST003", "message": "Timed out acquiring connection from connection pool.",
                               "details": None, "hint": None}
        assert time.monotonic() - t0 < POOL_TIMEOUT + 1.5
    finally:
        db.execute("select pg_advisory_unlock(424242)")
    holder.join(timeout=10)
    assert first and first[0].status_code == 200 and first[0].json() == 1
    assert httpx.post(f"{url}/health", json={}, headers=headers).status_code == 200


# -- strict JWT -----------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(header: dict[str, object], claims: dict[str, object], secret: str = SECRET) -> str:
    import hashlib
    import hmac

    h = _b64(json.dumps(header).encode())
    p = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{_b64(sig)}"


FUTURE = int(time.time()) + 3600


def _non_canonical(part: str) -> str:
    """The same bytes with the unused low bits of the last character set (lenient decoders agree)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(part[-1])
    unused = {2: 15, 3: 3}[len(part) % 4]  # 2 chars → 4 unused bits, 3 chars → 2 unused bits
    assert last & unused == 0
    return part[:-1] + alphabet[last | 1]


def test_tokens_decode_accepts_a_well_formed_token() -> None:
    good = _token({"alg": "HS256", "typ": "JWT"}, {"role": "authenticated", "exp": FUTURE})
    assert tokens.decode(good, SECRET)["role"] == "authenticated"
    no_typ = _token({"alg": "HS256"}, {"role": "anon"})
    assert tokens.decode(no_typ, SECRET) == {"role": "anon"}


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t + "=", id="padding on the signature"),
    pytest.param(lambda t: t + "==", id="double padding"),
    pytest.param(lambda t: t + "!", id="junk character"),
    pytest.param(lambda t: t + "\n", id="trailing newline"),
    pytest.param(lambda t: t + " ", id="trailing space"),
    pytest.param(lambda t: t.replace("-", "+").replace("_", "/"), id="standard alphabet"),
    pytest.param(lambda t: ".".join([*t.split(".")[:2], _non_canonical(t.split(".")[2])]), id="non-canonical sig"),
    pytest.param(lambda t: t + ".", id="four parts"),
    pytest.param(lambda t: t.rsplit(".", 1)[0], id="two parts"),
    pytest.param(lambda t: " " + t, id="leading space"),
])
def test_tokens_decode_refuses_anything_but_exact_base64url(mangle: Callable[[str], str]) -> None:
    # A token whose signature has both url-only characters (for the alphabet case).
    good = next(t for n in range(1000)
                if {"-", "_"} <= set((t := _token({"alg": "HS256", "typ": "JWT"},
                                                  {"role": "authenticated", "exp": FUTURE, "n": n})).split(".")[2]))
    assert tokens.decode(good, SECRET)["n"] is not None
    with pytest.raises(tokens.TokenError):
        tokens.decode(mangle(good), SECRET)


def test_tokens_decode_refuses_padded_header_or_payload() -> None:
    h = base64.urlsafe_b64encode(json.dumps({"alg": "HS256"}).encode()).decode()
    p = base64.urlsafe_b64encode(json.dumps({"role": "x"}).encode()).decode()
    assert "=" in h + p
    import hashlib
    import hmac

    sig = _b64(hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
    with pytest.raises(tokens.TokenError):
        tokens.decode(f"{h}.{p}.{sig}", SECRET)


@pytest.mark.parametrize("header,claims", [
    ({"alg": "HS384", "typ": "JWT"}, {"role": "anon"}),
    ({"alg": "none"}, {"role": "anon"}),
    ({"alg": "hs256"}, {"role": "anon"}),
    ({"typ": "JWT"}, {"role": "anon"}),
    ({"alg": "HS256", "typ": 1}, {"role": "anon"}),
    ({"alg": "HS256", "crit": ["exp"]}, {"role": "anon"}),
    ({"alg": "HS256"}, {"role": "anon", "exp": int(time.time()) - 1}),
    ({"alg": "HS256"}, {"role": "anon", "exp": True}),
    ({"alg": "HS256"}, {"role": "anon", "exp": "4102444800"}),
    ({"alg": "HS256"}, {"role": "anon", "nbf": FUTURE}),
    ({"alg": "HS256"}, {"role": "anon", "nbf": "0"}),
])
def test_tokens_decode_refuses_bad_headers_and_time_claims(header: dict[str, object],
                                                           claims: dict[str, object]) -> None:
    with pytest.raises(tokens.TokenError):
        tokens.decode(_token(header, claims), SECRET)


def test_tokens_decode_accepts_a_past_nbf() -> None:
    assert tokens.decode(_token({"alg": "HS256"}, {"role": "anon", "nbf": int(time.time()) - 5}), SECRET)["role"] == "anon"


def test_a_signature_with_trailing_junk_is_401_pgrst301(settings: StackSettings, make_user: Callable[..., User]) -> None:
    user = make_user()
    for junk in ("=", "!", "%20"):
        resp = httpx.post(f"{settings.api_url}/rest/v1/rpc/health", json={},
                          headers={"apikey": settings.anon_key, "Authorization": f"Bearer {user.token}{junk}"})
        assert resp.status_code == 401, (junk, resp.text)
        assert resp.json()["code"] == "PGRST301"
