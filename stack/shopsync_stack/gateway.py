"""The local API gateway on 54321: a small stand-in for Kong + PostgREST + the edge runtime.

It serves what shopsync clients use, the way the hosted services do:

* ``POST /rest/v1/rpc/<fn>`` (and ``GET`` for STABLE/IMMUTABLE functions, run read-only) for the
  functions of the schemas ``[api] schemas`` in ``supabase/config.toml`` exposes. One transaction per
  request: ``role`` set to the JWT's role claim (``anon`` without a token), ``request.jwt.claims``,
  ``request.headers`` (lower-cased JSON), ``request.method`` and ``request.path`` set
  transaction-locally, exactly as PostgREST does, so RLS and ``auth.uid()`` behave the same
  (:mod:`shopsync_stack.rpc`).
* Named arguments are typed from ``pg_proc`` as PostgREST types them; results are shaped as
  PostgREST shapes them (scalar or object, an array for ``setof``, 204 for ``void``), from
  Postgres's own JSON text (never re-parsed here).
* Errors are PostgREST's body ``{code, message, details, hint}`` with its status mapping.
* ``/functions/v1/<name>/...`` is proxied to ``supabase/functions/<name>/index.ts`` running in Deno,
  honouring ``verify_jwt`` from config.toml (:mod:`shopsync_stack.functions`).

* ``/realtime/v1/websocket``: a Realtime stand-in for Broadcast on private channels, authorized by
  the ``realtime.messages`` policies (:mod:`shopsync_stack.realtime`).

Not served (the README says so): GoTrue (``/auth/v1``), Storage, Realtime's Presence and Postgres
Changes, and table endpoints of ``/rest/v1`` (RPC only).

The server
----------
One asyncio event loop (aiohttp's low-level server, which also serves websockets) and a psycopg
``AsyncConnectionPool``: no thread per connection. Every request is handled in this order:

1. headers, bounded by aiohttp (8190-byte lines and fields) and by the header timeout;
2. the JWT, verified strictly (:func:`shopsync_stack.tokens.decode`): a bad token is 401
   ``PGRST301`` before any body byte is read;
3. the body limit for that caller: a ``Content-Length`` over it is 413 at once, without reading;
   a chunked body is counted as it is read and cut at the limit with 413. A bad
   ``Content-Length`` (``-1``, ``12abc``) or bad chunk framing is 400 from the HTTP parser;
4. the body, under a read timeout (no byte for that long) and a body timeout (all of it within
   that long): 408 ``REQUEST_TIMEOUT`` otherwise;
5. the call, on a pooled connection; none free within the acquire timeout is 504 ``PGRST003``
   ("Timed out acquiring connection from connection pool."), as PostgREST answers.

After an answer that left a body unread (401, 413, 408) the connection is closed, once the rest of
the body has been discarded for at most the linger time. Idle keep-alive connections are closed
after the idle timeout. Responses go out with TCP_NODELAY (aiohttp sets it).

Limits and timeouts come from the environment (bytes / seconds):

=====================================  =========  ===================================================
``SHOPSYNC_GATEWAY_BODY_LIMIT``        8 MiB      request body, callers with a token of another
                                                  role than ``anon``
``SHOPSYNC_GATEWAY_ANON_BODY_LIMIT``   64 KiB     request body, callers with no token or the anon
                                                  key (anon may call only ``health``)
``SHOPSYNC_GATEWAY_HEADER_TIMEOUT``    10         from a request's first byte to its last header
``SHOPSYNC_GATEWAY_READ_TIMEOUT``      10         longest silence while a body is read
``SHOPSYNC_GATEWAY_BODY_TIMEOUT``      60         the whole body
``SHOPSYNC_GATEWAY_IDLE_TIMEOUT``      60         an idle keep-alive connection
``SHOPSYNC_GATEWAY_LINGER``            1          discarding an unread body before closing
``SHOPSYNC_GATEWAY_POOL_SIZE``         32         database connections at most
``SHOPSYNC_GATEWAY_POOL_MIN``          2          database connections kept open
``SHOPSYNC_GATEWAY_POOL_TIMEOUT``      10         waiting for a free connection (then 504 PGRST003)
=====================================  =========  ===================================================

``SHOPSYNC_GATEWAY_DB_URL`` names the database (as ``authenticator``), ``SHOPSYNC_API_PORT`` the
port, ``SHOPSYNC_GATEWAY_LOG=1`` turns on the access log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import tomllib
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from . import tokens
from .functions import FunctionHost
from .realtime import PATH as REALTIME_PATH
from .realtime import RealtimeHub
from .rpc import RPC_PREFIX, ApiError, RpcEngine, status_for_sqlstate
from .settings import StackSettings

__all__ = ["ApiError", "Gateway", "GatewayConfig", "main", "serve", "status_for_sqlstate"]

log = logging.getLogger("shopsync.gateway")

_JSON = "application/json; charset=utf-8"
_CORS = {"Access-Control-Allow-Origin": "*"}
_SERVER = "shopsync-gateway"
# Hop-by-hop headers, and those the proxy sets itself, are not forwarded to or from a function.
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "host", "content-length", "expect"}
_OWN = {"content-type", "access-control-allow-origin", "date", "server"}


@dataclass(frozen=True)
class GatewayConfig:
    """Limits and timeouts (bytes, seconds); :meth:`from_env` reads them (module docstring)."""

    host: str = "127.0.0.1"
    port: int = 54321
    body_limit: int = 8 << 20
    anon_body_limit: int = 64 << 10
    header_timeout: float = 10.0
    read_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 60.0
    linger: float = 1.0
    pool_size: int = 32
    pool_min: int = 2
    pool_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewayConfig:
        env = dict(os.environ if env is None else env)

        def num(name: str, default: float, cast: type[int] | type[float]) -> Any:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                value = cast(text)
            except ValueError:
                raise SystemExit(f"gateway: {name}={text!r} is not a number") from None
            if value <= 0:
                raise SystemExit(f"gateway: {name} must be positive, not {text!r}")
            return value

        d = cls()
        return cls(
            port=num("SHOPSYNC_API_PORT", d.port, int),
            body_limit=num("SHOPSYNC_GATEWAY_BODY_LIMIT", d.body_limit, int),
            anon_body_limit=num("SHOPSYNC_GATEWAY_ANON_BODY_LIMIT", d.anon_body_limit, int),
            header_timeout=num("SHOPSYNC_GATEWAY_HEADER_TIMEOUT", d.header_timeout, float),
            read_timeout=num("SHOPSYNC_GATEWAY_READ_TIMEOUT", d.read_timeout, float),
            body_timeout=num("SHOPSYNC_GATEWAY_BODY_TIMEOUT", d.body_timeout, float),
            idle_timeout=num("SHOPSYNC_GATEWAY_IDLE_TIMEOUT", d.idle_timeout, float),
            linger=num("SHOPSYNC_GATEWAY_LINGER", d.linger, float),
            pool_size=num("SHOPSYNC_GATEWAY_POOL_SIZE", d.pool_size, int),
            pool_min=num("SHOPSYNC_GATEWAY_POOL_MIN", d.pool_min, int),
            pool_timeout=num("SHOPSYNC_GATEWAY_POOL_TIMEOUT", d.pool_timeout, float),
        )


def _json_response(status: int, body: bytes | None, *, content_type: str = _JSON,
                   extra: dict[str, str] | None = None) -> web.Response:
    headers = {**_CORS, "Server": _SERVER, **(extra or {})}
    if body is not None:
        headers["Content-Type"] = content_type
    return web.Response(status=status, body=body if body is not None else b"", headers=headers)


def _error_response(err: ApiError) -> web.Response:
    resp = _json_response(err.status, json.dumps(err.body()).encode())
    if err.close:
        resp.force_close()
    return resp


class Gateway:
    """Routes requests to the RPC engine and the function host (see the module docstring)."""

    def __init__(self, root: Path, settings: StackSettings, config: GatewayConfig | None = None, *,
                 db_url: str | None = None):
        self.root = root
        self.settings = settings
        self.config = config or GatewayConfig()
        toml = tomllib.loads((root / "supabase" / "config.toml").read_text())
        self.schemas: list[str] = list(toml.get("api", {}).get("schemas", ["public"]))
        self.function_config: dict[str, dict[str, Any]] = toml.get("functions", {})
        conninfo = db_url or "postgresql://authenticator:postgres@127.0.0.1:54322/postgres"
        self.rpc = RpcEngine(conninfo, self.schemas, pool_min=self.config.pool_min, pool_size=self.config.pool_size,
                             acquire_timeout=self.config.pool_timeout)
        self.functions = FunctionHost(root, settings)
        self.realtime = RealtimeHub(settings.db_url, settings.jwt_secret)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.rpc.open()
        await self.realtime.start()

    async def close(self) -> None:
        await self.realtime.close()
        self.functions.stop()
        if self._session is not None:
            await self._session.close()
        await self.rpc.close()

    # -- who is calling --------------------------------------------------------------------------
    def authenticate(self, headers: dict[str, str]) -> dict[str, Any]:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("apikey", "")
        if not token:
            return {"role": "anon"}
        try:
            claims = tokens.decode(token, self.settings.jwt_secret)
        except tokens.TokenError as exc:
            raise ApiError(401, "PGRST301", str(exc)) from None
        claims.setdefault("role", "anon")
        if not isinstance(claims["role"], str):
            raise ApiError(401, "PGRST301", "JWT role claim is not a string")
        return claims

    def body_limit(self, role: str) -> int:
        return self.config.anon_body_limit if role == "anon" else self.config.body_limit

    async def read_body(self, request: BaseRequest, limit: int) -> bytes:
        """The request body, at most ``limit`` bytes (413 at once from ``Content-Length``, else when
        the count passes it), under the read and body timeouts (408)."""
        length = request.content_length
        if length is not None and length > limit:
            raise self._too_large(limit)
        if not request.body_exists:
            return b""
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.body_timeout
        content = request.content
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(min(self.config.read_timeout, left)):
                    chunk = await content.readany()
            except TimeoutError:
                raise ApiError(408, "REQUEST_TIMEOUT", "The request body did not arrive in time.",
                               f"read timeout {self.config.read_timeout:g} s, body timeout "
                               f"{self.config.body_timeout:g} s", None, close=True) from None
            except (aiohttp.ClientPayloadError, HttpProcessingError) as exc:
                raise ApiError(400, "PGRST102", f"Malformed request body: {exc}", close=True) from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, limit: int) -> ApiError:
        return ApiError(413, "REQUEST_TOO_LARGE", f"The request body is larger than {limit} bytes.",
                        f"limit {limit} bytes for this caller",
                        "Callers without a user token have a smaller limit (SHOPSYNC_GATEWAY_ANON_BODY_LIMIT) "
                        "than callers with one (SHOPSYNC_GATEWAY_BODY_LIMIT).", close=True)

    # -- routing ---------------------------------------------------------------------------------
    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as err:
            if not err.close and request.body_exists and not request.content.at_eof():
                err.close = True  # answered before its body was read: do not reuse the connection
            return _error_response(err)
        except Exception as exc:  # anything unexpected is a 500 with what happened
            log.exception("unexpected error on %s %s", request.method, request.path)
            return _error_response(ApiError(500, "PGRST000", f"{type(exc).__name__}: {exc}", close=True))

    async def _dispatch(self, request: BaseRequest) -> web.StreamResponse:
        url = urlsplit(request.raw_path)
        path, method = url.path, request.method
        if method == "OPTIONS":
            return _json_response(200, b"", extra={
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type, "
                                                "accept-profile, content-profile, prefer",
            })
        headers = {k.lower(): v for k, v in request.headers.items()}
        if path.startswith(RPC_PREFIX):
            if method not in ("GET", "POST"):
                raise ApiError(405, "PGRST101", "For functions, only GET and POST verbs are allowed")
            claims = self.authenticate(headers)
            body = await self.read_body(request, self.body_limit(claims["role"])) if method == "POST" else b""
            status, out = await self.rpc.call(method, path, url.query, headers, body, claims)
            return _json_response(status, out)
        if path.startswith("/rest/v1"):
            self.authenticate(headers)  # as PostgREST: a bad token is 401 before anything else
            raise ApiError(404, "PGRST125", "the shopsync local stack serves RPC only: use /rest/v1/rpc/<function>",
                           "Table endpoints are not part of the local stand-in for PostgREST.")
        if path == REALTIME_PATH and method == "GET":
            return await self.realtime.handle(request)
        if path.startswith("/functions/v1/"):
            return await self._function(request, path[len("/functions/v1/"):], url.query, headers)
        if path in ("/", "/health"):
            return _json_response(200, b'{"ok":true,"service":"shopsync-gateway"}')
        raise ApiError(404, "NOT_FOUND", f"no route for {path} on the shopsync local stack")

    async def _function(self, request: BaseRequest, rest: str, query: str, headers: dict[str, str]) -> web.Response:
        name = rest.split("/", 1)[0]
        unread = request.body_exists
        if not self.functions.exists(name):
            resp = _json_response(404, json.dumps({"code": "NOT_FOUND", "message": f"function {name!r} not found"}).encode())
            if unread:
                resp.force_close()
            return resp
        auth = headers.get("authorization", "")
        role = "anon"
        try:
            if not auth.lower().startswith("bearer "):
                raise tokens.TokenError("missing authorization header")
            claims = tokens.decode(auth[7:].strip(), self.settings.jwt_secret)
            role = claims.get("role", "anon") if isinstance(claims.get("role", "anon"), str) else "anon"
        except tokens.TokenError:
            if self.function_config.get(name, {}).get("verify_jwt", True):
                resp = _json_response(401, b'{"code":401,"msg":"Invalid JWT"}')
                if unread:
                    resp.force_close()
                return resp
        body = await self.read_body(request, self.body_limit(role))
        port = await self.functions.port_for(name)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False, skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=120))
        fwd = {k: v for k, v in headers.items() if k not in _HOP}
        target = f"http://127.0.0.1:{port}/{rest}" + (f"?{query}" if query else "")
        async with self._session.request(request.method, target, headers=fwd, data=body or None) as upstream:
            data = await upstream.read()
            extra = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP and k.lower() not in _OWN}
            return _json_response(upstream.status, data,
                                  content_type=upstream.headers.get("Content-Type") or "text/plain", extra=extra)


# -- the HTTP server -------------------------------------------------------------------------------
class _Protocol(RequestHandler):
    """aiohttp's per-connection protocol with a header timeout (slowloris) and JSON error bodies.

    aiohttp closes a connection that is idle for ``keepalive_timeout`` (also one that never sends a
    byte); this adds a deadline from the first byte of a request to its last header byte.
    """

    def __init__(self, manager: Any, *, header_timeout: float, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        waiting = not self._request_in_progress and not self._messages
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._cancel_header_timer()
        elif waiting and data and self._header_timer is None:
            self._header_timer = self._loop.call_later(self._header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self._request_in_progress and not self._messages:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Errors raised by aiohttp itself (a malformed request line, header or Content-Length) in
        PostgREST's error shape; the connection is closed after them."""
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        code = "PGRST000" if status >= 500 else "BAD_REQUEST"
        return _error_response(ApiError(status, code, message or phrase, close=True))


class _Server(web.Server):
    def __init__(self, handler: Any, *, header_timeout: float, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)


async def serve(gw: Gateway, stop: asyncio.Event, *, ready: asyncio.Event | None = None) -> None:
    """Serve ``gw`` on its configured host and port until ``stop`` is set."""
    cfg = gw.config
    await gw.start()
    server = _Server(gw.handle, header_timeout=cfg.header_timeout, keepalive_timeout=cfg.idle_timeout,
                     lingering_time=cfg.linger,
                     access_log=logging.getLogger("aiohttp.access") if os.environ.get("SHOPSYNC_GATEWAY_LOG") else None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, cfg.host, cfg.port, reuse_address=True, backlog=1024)
    print(f"shopsync gateway on http://{cfg.host}:{cfg.port} (schemas: {', '.join(gw.schemas)}; "
          f"pool {cfg.pool_size}, body limit {cfg.body_limit} / anon {cfg.anon_body_limit})", flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        listener.close()
        await server.shutdown(2.0)
        await listener.wait_closed()
        await gw.close()


def main() -> None:
    from .postgres import Stack, find_project_root

    if os.environ.get("SHOPSYNC_GATEWAY_LOG"):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root = find_project_root()
    settings = Stack(root).settings
    config = GatewayConfig.from_env()

    async def run() -> None:
        gw = Gateway(root, settings, config, db_url=os.environ.get("SHOPSYNC_GATEWAY_DB_URL"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(gw, stop)

    asyncio.run(run())
    sys.exit(0)


if __name__ == "__main__":
    main()
