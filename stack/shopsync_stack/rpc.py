"""``/rest/v1/rpc/<fn>`` as PostgREST serves it, on a psycopg :class:`AsyncConnectionPool`.

One transaction per request: ``set transaction read only`` for GET, the function looked up in
``pg_proc`` (no schema cache: tests create functions at run time), ``role``,
``request.jwt.claims``, ``request.headers`` (lower-cased JSON), ``request.method`` and
``request.path`` set transaction-locally, the call, commit. Named arguments are typed from
``pg_proc``; the result is Postgres's own JSON text, never re-parsed here.

Two round trips per request (psycopg pipeline mode): the lookup with the request's context, then
the call with its ``response.status`` and the commit. (It was six: a pool check, the lookup, the
context, the call, the status, the commit; each a round trip through the event loop.) Connections
are not checked when taken from the pool: a connection found broken by the first round trip (say,
after a Postgres restart) is dropped, the pool checks its other idle connections (after a restart
they are all broken), and the request runs once more, which is safe because nothing was executed
but the lookup.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

__all__ = ["RPC_PREFIX", "ApiError", "RpcEngine", "status_for_sqlstate"]

RPC_PREFIX = "/rest/v1/rpc/"

# Bodies larger than this are parsed off the event loop (a bounded executor), so one big push does
# not stall every other connection for the milliseconds its JSON takes.
_PARSE_INLINE_MAX = 256 * 1024

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

_SET_CONTEXT = (
    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
    " set_config('request.headers', %s, true), set_config('request.method', %s, true),"
    " set_config('request.path', %s, true)"
)


class _StaleConnection(Exception):
    """The first round trip of a request failed on a broken connection: nothing ran, retry."""


class ApiError(Exception):
    """An answer in PostgREST's error shape ``{code, message, details, hint}`` with its status."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None, hint: str | None = None,
                 *, close: bool = False):
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.hint = status, code, message, details, hint
        self.close = close  # close the connection after answering (a body left unread)

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


def _parse_body(body: bytes) -> Any:
    try:
        return json.loads(body, parse_float=Decimal) if body.strip() else {}
    except ValueError as exc:
        raise ApiError(400, "PGRST102", f"Empty or invalid json: {exc}") from None
    except RecursionError:  # JSON nested deeper than Python parses: a client error, not a 500
        raise ApiError(400, "PGRST102", "Empty or invalid json: nested too deeply") from None


class _Function:
    """One candidate function from pg_proc, with its input arguments."""

    def __init__(self, row: tuple[Any, ...]):
        (self.volatility, self.retset, self.rettyptype, self.rettype, nargs, self.ndefaults,
         argnames, argmodes, self.argtypes, self.argcats) = row
        if argmodes:
            names = [n for n, m in zip(argnames, argmodes, strict=True) if m in ("i", "b", "v")]
        else:
            names = list(argnames[:nargs])
        names += [""] * (nargs - len(names))
        self.argnames: list[str] = names
        self.required = set(names[: nargs - self.ndefaults])

    def accepts(self, keys: set[str]) -> bool:
        return keys <= set(self.argnames) and self.required <= keys

    def single_json_arg(self) -> bool:
        return len(self.argnames) == 1 and self.argnames[0] == "" and self.argtypes[0] in ("json", "jsonb")


class RpcEngine:
    """Runs RPC calls on an async connection pool.

    ``pool_size`` connections at most (``pool_min`` kept open); a request that finds none free within
    ``acquire_timeout`` seconds is answered 504 ``PGRST003`` as PostgREST answers it.
    """

    def __init__(self, conninfo: str, schemas: list[str], *, pool_min: int = 2, pool_size: int = 32,
                 acquire_timeout: float = 10.0):
        self.schemas = schemas
        self.acquire_timeout = acquire_timeout
        self.pool = AsyncConnectionPool(conninfo, min_size=min(pool_min, pool_size), max_size=pool_size,
                                        timeout=acquire_timeout, open=False,
                                        kwargs={"application_name": "shopsync-gateway"})

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def call(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                   claims: dict[str, Any]) -> tuple[int, bytes | None]:
        role = claims["role"]
        fn_name = path[len(RPC_PREFIX):]
        schema = headers.get("content-profile" if method == "POST" else "accept-profile") or self.schemas[0]
        if schema not in self.schemas:
            raise ApiError(406, "PGRST106", f"The schema must be one of the following: {', '.join(self.schemas)}")
        raw: str | None = None
        if method == "POST":
            if len(body) > _PARSE_INLINE_MAX:
                args = await asyncio.get_running_loop().run_in_executor(None, _parse_body, body)
            else:
                args = _parse_body(body)
            raw = _utf8(body) if body.strip() else None
        else:
            args = dict(parse_qsl(query, keep_blank_values=True))
        try:
            for attempt in (1, 2):
                try:
                    async with self.pool.connection(timeout=self.acquire_timeout) as conn:
                        return await self._run(conn, method, path, schema, fn_name, args, claims, headers, raw)
                except _StaleConnection as exc:
                    if attempt == 2:
                        raise ApiError(503, "PGRST001", f"Database client error: {exc.__cause__}") from None
                    # One broken connection means the server went away (a restart): its siblings
                    # in the pool are broken too, so check them all before the second attempt.
                    await self.pool.check()
            raise AssertionError("unreachable")
        except PoolTimeout:  # before psycopg.Error: PoolTimeout is an OperationalError with no SQLSTATE
            raise ApiError(504, "PGRST003", "Timed out acquiring connection from connection pool.") from None
        except psycopg.Error as exc:
            diag = exc.diag
            code = diag.sqlstate
            if code is None:
                raise ApiError(503, "PGRST001", f"Database client error: {exc}") from None
            raise ApiError(status_for_sqlstate(code, role), code, diag.message_primary or str(exc),
                           diag.message_detail, diag.message_hint) from None
        except RecursionError:  # re-encoding an argument nested just below the parse limit
            raise ApiError(400, "PGRST102", "Empty or invalid json: nested too deeply") from None

    async def _run(self, conn: psycopg.AsyncConnection[Any], method: str, path: str, schema: str, fn_name: str,
                   args: Any, claims: dict[str, Any], headers: dict[str, str],
                   raw: str | None = None) -> tuple[int, bytes | None]:
        cur = conn.cursor()
        try:
            # Round trip 1: the lookup, with the request's context set (transaction-local; if the
            # function is not found the transaction is rolled back).
            async with conn.pipeline():
                if method == "GET":
                    await conn.cursor().execute("set transaction read only")
                await cur.execute(_LOOKUP, (schema, fn_name))
                await conn.cursor().execute(_SET_CONTEXT, (claims["role"], json.dumps(claims), json.dumps(headers),
                                                           method, path))
            rows = await cur.fetchall()
        except psycopg.OperationalError as exc:
            if conn.broken:
                raise _StaleConnection() from exc
            raise
        candidates = [_Function(r) for r in rows]
        # As PostgREST: a function matching the body's keys by name first; else (a POST) the one
        # with a single unnamed json/jsonb argument, which gets the body as it came.
        fn = None
        if isinstance(args, dict):
            keys = set(args)
            fn = next((c for c in candidates if c.accepts(keys) and not c.single_json_arg()), None)
        single = next((c for c in candidates if c.single_json_arg()), None) if method == "POST" else None
        if fn is None:
            fn = single
        if fn is None:
            shown = ", ".join(sorted(args)) if isinstance(args, dict) else ""
            raise ApiError(404, "PGRST202",
                           f"Could not find the function {schema}.{fn_name}({shown}) in the schema cache",
                           "Searched for the function with the given argument names, but no matches were found.",
                           None)
        if method == "GET" and fn.volatility == "v":
            raise ApiError(405, "PGRST101", f"cannot call the VOLATILE function {schema}.{fn_name} with GET; use POST")
        params: list[Any] = []
        # A POST body that is UTF-8 goes to Postgres as it came (as PostgREST hands it over), and
        # jsonb arguments are taken out of it there: no re-encoding in Python of a large argument
        # (a push's events), numbers exactly as the client wrote them.
        call_args: sql.Composable
        if fn is single:
            call_args = sql.SQL("%s::" + fn.argtypes[0])
            params.append(raw if raw is not None else _json_text(args))
        else:
            parts: list[sql.Composable] = []
            for name, value in args.items():
                i = fn.argnames.index(name)
                typ, cat = fn.argtypes[i], fn.argcats[i]
                if value is None:
                    parts.append(sql.SQL("{} => null::" + typ).format(sql.Identifier(name)))
                    continue
                if typ == "jsonb" and raw is not None and isinstance(value, (dict, list)):
                    parts.append(sql.SQL("{} => (%s::jsonb -> %s)::" + typ).format(sql.Identifier(name)))
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
        # Round trip 2: the call, its status and the commit. A function may set its answer's status
        # (PostgREST's `response.status`), e.g. 503 for a call whose work timed out but whose
        # rate-limit count is committed.
        status_cur = conn.cursor()
        async with conn.pipeline():
            await cur.execute(query, params)
            await status_cur.execute("select current_setting('response.status', true)")
            await conn.commit()
        row = await cur.fetchone()
        set_status = await status_cur.fetchone()
        status = int(set_status[0]) if set_status and (set_status[0] or "").isdigit() else None
        if fn.rettype == "void" and not fn.retset:
            return status or 204, None
        text = row[0] if row else None
        return status or 200, (text if text is not None else "null").encode()
