"""The local API gateway on 54321: a small stand-in for Kong + PostgREST + the edge runtime.

It serves what shopsync clients use, the way the hosted services do:

* ``POST /rest/v1/rpc/<fn>`` (and ``GET`` for STABLE/IMMUTABLE functions, run read-only) for the
  functions of the schemas ``[api] schemas`` in ``supabase/config.toml`` exposes. One transaction per
  request: ``role`` set to the JWT's role claim (``anon`` without a token), ``request.jwt.claims``,
  ``request.headers`` (lower-cased JSON), ``request.method`` and ``request.path`` set
  transaction-locally, exactly as PostgREST does, so RLS and ``auth.uid()`` behave the same.
* Named arguments are typed from ``pg_proc`` as PostgREST types them; results are shaped as
  PostgREST shapes them (scalar or object, an array for ``setof``, 204 for ``void``).
* Errors are PostgREST's body ``{code, message, details, hint}`` with its status mapping.
* ``/functions/v1/<name>/...`` is proxied to ``supabase/functions/<name>/index.ts`` running in Deno,
  honouring ``verify_jwt`` from config.toml.

Not served (the README says so): GoTrue (``/auth/v1``), Realtime, Storage, and table endpoints of
``/rest/v1`` (RPC only).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from . import tokens
from .settings import StackSettings

__all__ = ["Gateway", "status_for_sqlstate", "main"]

HOST_TS = Path(__file__).with_name("function_host.ts")

_LOOKUP = """
select p.provolatile, p.proretset, t.typtype, p.prorettype::regtype::text as rettype,
       p.pronargs, p.pronargdefaults,
       coalesce(p.proargnames, '{}'::text[]) as argnames,
       coalesce(p.proargmodes::text[], '{}'::text[]) as argmodes,
       array(select format_type(a, null) from unnest(p.proargtypes) with ordinality u(a, i) order by i) as argtypes,
       array(select tt.typcategory::text from unnest(p.proargtypes) with ordinality u(a, i)
             join pg_catalog.pg_type tt on tt.oid = u.a order by i) as argcats
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
join pg_catalog.pg_type t on t.oid = p.prorettype
where n.nspname = %s and p.proname = %s and p.prokind = 'f'
"""


def _json_text(value: Any) -> str:
    """JSON text of a parsed request body with its numbers exactly as the client wrote them
    (they are parsed as Decimal): PostgREST hands Postgres the client's JSON, so 1e400 or a
    20-digit fraction must reach jsonb unrounded, not as a Python float."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)


def _utf8(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.hint = status, code, message, details, hint

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details, "hint": self.hint}


def status_for_sqlstate(code: str, role: str) -> int:
    """PostgREST's mapping of a SQLSTATE to an HTTP status."""
    if code.startswith("PT") and code[2:].isdigit():
        return int(code[2:])
    if code == "P0001":
        return 400
    if code.startswith("P0"):
        return 500
    if code == "42501":
        return 401 if role == "anon" else 403
    if code in ("23505", "23503"):
        return 409
    if code in ("42883", "42P01"):
        return 404
    if code == "25006":
        return 405
    if code.startswith("08"):
        return 503
    if code[:2] in ("40", "53", "54", "55", "57", "58", "F0", "HV", "XX", "39"):
        return 500
    return 400


class _Function:
    """One candidate function from pg_proc, with its input arguments."""

    def __init__(self, row: tuple[Any, ...]):
        (self.volatility, self.retset, self.rettyptype, self.rettype, nargs, self.ndefaults,
         argnames, argmodes, self.argtypes, self.argcats) = row
        if argmodes:
            names = [n for n, m in zip(argnames, argmodes) if m in ("i", "b", "v")]
        else:
            names = list(argnames[:nargs])
        names += [""] * (nargs - len(names))
        self.argnames: list[str] = names
        self.required = set(names[: nargs - self.ndefaults])

    def accepts(self, keys: set[str]) -> bool:
        return keys <= set(self.argnames) and self.required <= keys

    def single_json_arg(self) -> bool:
        return len(self.argnames) == 1 and self.argnames[0] == "" and self.argtypes[0] in ("json", "jsonb")


class Gateway:
    def __init__(self, root: Path, settings: StackSettings, *, port: int = 54321, db_url: str | None = None):
        self.root = root
        self.settings = settings
        self.port = port
        config = tomllib.loads((root / "supabase" / "config.toml").read_text())
        self.schemas: list[str] = list(config.get("api", {}).get("schemas", ["public"]))
        self.function_config: dict[str, dict[str, Any]] = config.get("functions", {})
        conninfo = db_url or "postgresql://authenticator:postgres@127.0.0.1:54322/postgres"
        self.pool = ConnectionPool(conninfo, min_size=2, max_size=32, timeout=10,
                                   check=ConnectionPool.check_connection, open=True,
                                   kwargs={"application_name": "shopsync-gateway"})
        self.functions = FunctionHost(root, settings)

    # -- RPC ---------------------------------------------------------------------------------------
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

    def call(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes | None]:
        claims = self.authenticate(headers)
        role = claims["role"]
        fn_name = path[len("/rest/v1/rpc/"):]
        schema = headers.get("content-profile" if method == "POST" else "accept-profile") or self.schemas[0]
        if schema not in self.schemas:
            raise ApiError(406, "PGRST106", f"The schema must be one of the following: {', '.join(self.schemas)}")
        if method == "POST":
            try:
                args = json.loads(body, parse_float=Decimal) if body.strip() else {}
            except ValueError as exc:
                raise ApiError(400, "PGRST102", f"Empty or invalid json: {exc}") from None
            except RecursionError:  # JSON nested deeper than Python parses: a client error, not a 500
                raise ApiError(400, "PGRST102", "Empty or invalid json: nested too deeply") from None
        else:
            args = dict(parse_qsl(query, keep_blank_values=True))
        try:
            with self.pool.connection() as conn:
                raw = _utf8(body) if method == "POST" and body.strip() else None
                return self._run(conn, method, path, schema, fn_name, args, claims, headers, raw)
        except psycopg.Error as exc:
            diag = exc.diag
            code = diag.sqlstate
            if code is None:
                raise ApiError(503, "PGRST001", f"Database client error: {exc}") from None
            raise ApiError(status_for_sqlstate(code, role), code, diag.message_primary or str(exc),
                           diag.message_detail, diag.message_hint) from None
        except PoolTimeout:
            raise ApiError(504, "PGRST003", "Timed out acquiring connection from connection pool.") from None
        except RecursionError:  # re-encoding an argument nested just below the parse limit
            raise ApiError(400, "PGRST102", "Empty or invalid json: nested too deeply") from None

    def _run(self, conn: psycopg.Connection, method: str, path: str, schema: str, fn_name: str,
             args: Any, claims: dict[str, Any], headers: dict[str, str],
             raw: str | None = None) -> tuple[int, bytes | None]:
        cur = conn.cursor()
        if method == "GET":
            cur.execute("set transaction read only")
        candidates = [_Function(r) for r in cur.execute(_LOOKUP, (schema, fn_name)).fetchall()]
        fn = None
        single = next((c for c in candidates if c.single_json_arg()), None)
        if single is not None:
            fn = single
        elif isinstance(args, dict):
            keys = set(args)
            fn = next((c for c in candidates if c.accepts(keys)), None)
        if fn is None:
            shown = ", ".join(sorted(args)) if isinstance(args, dict) else ""
            raise ApiError(404, "PGRST202",
                           f"Could not find the function {schema}.{fn_name}({shown}) in the schema cache",
                           "Searched for the function with the given argument names, but no matches were found.",
                           None)
        if method == "GET" and fn.volatility == "v":
            raise ApiError(405, "PGRST101", f"cannot call the VOLATILE function {schema}.{fn_name} with GET; use POST")
        cur.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
            " set_config('request.headers', %s, true), set_config('request.method', %s, true),"
            " set_config('request.path', %s, true)",
            (claims["role"], json.dumps(claims), json.dumps(headers), method, path),
        )
        params: list[Any] = []
        # A POST body that is UTF-8 goes to Postgres as it came (as PostgREST hands it over), and
        # jsonb arguments are taken out of it there: no re-encoding in Python of a large argument
        # (a push's events), numbers exactly as the client wrote them.
        if fn is single:
            call_args: sql.Composable = sql.SQL("%s::" + fn.argtypes[0])
            params.append(raw if raw is not None else _json_text(args))
        else:
            parts = []
            for name, value in args.items():
                i = fn.argnames.index(name)
                typ, cat = fn.argtypes[i], fn.argcats[i]
                if value is None:
                    parts.append(sql.SQL("{} => null::" + typ).format(sql.Identifier(name)))
                    continue
                if typ == "jsonb" and raw is not None and isinstance(value, (dict, list)):
                    expr, param = "(%s::jsonb -> %s)::" + typ, None
                    parts.append(sql.SQL("{} => " + expr).format(sql.Identifier(name)))
                    params.extend((raw, name))
                    continue
                if typ in ("json", "jsonb"):
                    expr, param = "%s::" + typ, _json_text(value)
                elif cat == "A" and isinstance(value, list):
                    expr, param = "array(select jsonb_array_elements_text(%s::jsonb))::" + typ, _json_text(value)
                elif isinstance(value, (dict, list)):
                    expr, param = "%s::" + typ, _json_text(value)
                elif isinstance(value, bool):
                    expr, param = "%s::" + typ, "true" if value else "false"
                else:
                    expr, param = "%s::" + typ, str(value)
                parts.append(sql.SQL("{} => " + expr).format(sql.Identifier(name)))
                params.append(param)
            call_args = sql.SQL(", ").join(parts)
        target = sql.SQL("{}.{}({})").format(sql.Identifier(schema), sql.Identifier(fn_name), call_args)
        if fn.retset:
            query = sql.SQL("select coalesce(json_agg(_r), '[]')::text from {} as _r").format(target)
        elif fn.rettype == "void":
            query = sql.SQL("select {}").format(target)
        elif fn.rettype in ("json", "jsonb"):
            query = sql.SQL("select ({})::text").format(target)
        else:
            query = sql.SQL("select to_json(_r)::text from {} as _r").format(target)
        row = cur.execute(query, params).fetchone()
        conn.commit()
        if fn.rettype == "void" and not fn.retset:
            return 204, None
        text = row[0] if row else None
        return 200, (text if text is not None else "null").encode()

    def close(self) -> None:
        self.functions.stop()
        self.pool.close()


class FunctionHost:
    """Runs each ``supabase/functions/<name>/index.ts`` in its own Deno process, started on demand."""

    def __init__(self, root: Path, settings: StackSettings):
        self.root = root
        self.settings = settings
        self.deno = root / "tools" / "node_modules" / ".bin" / "deno"
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.lock = threading.Lock()

    def exists(self, name: str) -> bool:
        return bool(name) and "/" not in name and not name.startswith(".") and \
            (self.root / "supabase" / "functions" / name / "index.ts").is_file()

    def port_for(self, name: str) -> int:
        with self.lock:
            entry = self.procs.get(name)
            if entry and entry[0].poll() is None:
                return entry[1]
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            fn_dir = self.root / "supabase" / "functions" / name
            env = {
                **os.environ,
                "SUPABASE_URL": self.settings.api_url,
                "SUPABASE_ANON_KEY": self.settings.anon_key,
                "SUPABASE_SERVICE_ROLE_KEY": self.settings.service_role_key,
                "SUPABASE_DB_URL": self.settings.db_url,
                "SHOPSYNC_FUNCTION_PORT": str(port),
                "SHOPSYNC_FUNCTION_ENTRY": (fn_dir / "index.ts").as_uri(),
                "DENO_DIR": str(self.root / "tools" / ".deno"),
                "DENO_NO_UPDATE_CHECK": "1",
                "NO_COLOR": "1",
            }
            cmd = [str(self.deno), "run", "-A", "--no-prompt"]
            if (fn_dir / "deno.json").is_file():
                cmd += ["--config", str(fn_dir / "deno.json")]
            cmd.append(str(HOST_TS))
            proc = subprocess.Popen(cmd, env=env, cwd=fn_dir, stdin=subprocess.DEVNULL)
            self.procs[name] = (proc, port)
        deadline = time.monotonic() + 60  # the first start may fetch npm: imports
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ApiError(500, "FUNCTION_CRASHED", f"function {name} exited with code {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return port
            except OSError:
                time.sleep(0.02)
        raise ApiError(504, "FUNCTION_TIMEOUT", f"function {name} did not start listening")

    def stop(self) -> None:
        with self.lock:
            for proc, _ in self.procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc, _ in self.procs.values():
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self.procs.clear()


_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "host", "content-length"}


def _make_handler(gw: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "shopsync-gateway"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and the
            # peer's delayed ACK hold every small response back ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            if os.environ.get("SHOPSYNC_GATEWAY_LOG"):
                super().log_message(format, *args)

        def _send(self, status: int, body: bytes | None, content_type: str = "application/json; charset=utf-8",
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body or b"")))
            self.send_header("Access-Control-Allow-Origin", "*")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _error(self, err: ApiError) -> None:
            self._send(err.status, json.dumps(err.body()).encode())

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            body = self._body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                if url.path.startswith("/rest/v1/rpc/") and self.command in ("GET", "POST"):
                    status, out = gw.call(self.command, url.path, url.query, headers, body)
                    self._send(status, out)
                elif url.path.startswith("/rest/v1/rpc/"):
                    raise ApiError(405, "PGRST101", "For functions, only GET and POST verbs are allowed")
                elif url.path.startswith("/rest/v1"):
                    gw.authenticate(headers)  # as PostgREST: a bad token is 401 before anything else
                    raise ApiError(404, "PGRST125",
                                   "the shopsync local stack serves RPC only: use /rest/v1/rpc/<function>",
                                   "Table endpoints are not part of the local stand-in for PostgREST.")
                elif url.path.startswith("/functions/v1/"):
                    self._function(url.path[len("/functions/v1/"):], url.query, headers, body)
                elif url.path in ("/", "/health"):
                    self._send(200, b'{"ok":true,"service":"shopsync-gateway"}')
                else:
                    raise ApiError(404, "NOT_FOUND", f"no route for {url.path} on the shopsync local stack")
            except ApiError as err:
                self._error(err)
            except Exception as exc:  # anything unexpected is a 500 with what happened
                self._error(ApiError(500, "PGRST000", f"{type(exc).__name__}: {exc}"))

        def _function(self, rest: str, query: str, headers: dict[str, str], body: bytes) -> None:
            name = rest.split("/", 1)[0]
            if not gw.functions.exists(name):
                self._send(404, json.dumps({"code": "NOT_FOUND", "message": f"function {name!r} not found"}).encode())
                return
            if gw.function_config.get(name, {}).get("verify_jwt", True):
                auth = headers.get("authorization", "")
                try:
                    if not auth.lower().startswith("bearer "):
                        raise tokens.TokenError("missing authorization header")
                    tokens.decode(auth[7:].strip(), gw.settings.jwt_secret)
                except tokens.TokenError:
                    self._send(401, b'{"code":401,"msg":"Invalid JWT"}')
                    return
            port = gw.functions.port_for(name)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                fwd = {k: v for k, v in headers.items() if k not in _HOP}
                conn.request(self.command, "/" + rest + (f"?{query}" if query else ""), body=body or None, headers=fwd)
                resp = conn.getresponse()
                data = resp.read()
                # Headers this server writes itself are not copied (a second Date or Server header).
                own = {"content-type", "access-control-allow-origin", "date", "server"}
                extra = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP and k.lower() not in own}
                self._send(resp.status, data, resp.getheader("Content-Type") or "text/plain", extra)
            finally:
                conn.close()

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch()

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch()

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch()

        def do_PATCH(self) -> None:  # noqa: N802
            self._dispatch()

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch()

        def do_OPTIONS(self) -> None:  # noqa: N802
            self._body()
            self._send(200, b"", extra={
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type, "
                                                "accept-profile, content-profile, prefer",
            })

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def main() -> None:
    from .postgres import Stack, find_project_root

    root = find_project_root()
    settings = Stack(root).settings
    port = int(os.environ.get("SHOPSYNC_API_PORT", "54321"))
    gw = Gateway(root, settings, port=port, db_url=os.environ.get("SHOPSYNC_GATEWAY_DB_URL"))
    server = _Server(("127.0.0.1", port), _make_handler(gw))

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"shopsync gateway on http://127.0.0.1:{port} (schemas: {', '.join(gw.schemas)})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        gw.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
