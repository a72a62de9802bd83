"""Isolation matrix: every table and function of the exposed schemas × hostile principals × operations.

Generated from the catalog (``pg_class``/``pg_proc`` of ``[api] schemas`` in config.toml and
``shopsync.synced_tables``), so a new table or RPC is covered without editing this file. Expected
outcomes come from rules, not from a list of tables:

* nothing crosses a tenant: a principal sees rows of its own active shop only (anon and a revoked
  member: none), changes nothing anywhere, and no response carries another shop's identifiers;
* nothing beyond the role: viewers write nothing, anon executes only ``ANON_RPCS``, functions the
  role cannot execute answer 42501, bad tokens answer 401 PGRST301 before anything runs.

Table operations run in SQL as the API role with the JWT claims set, exactly as PostgREST sets them
per request, inside transactions that are rolled back. Each write is tried twice: as is, and with
user triggers off (``session_replication_role = replica``), where only grants and RLS stand between
the principal and the row, so the write must fail with 42501 there: a trigger is never the only
guard. RPCs (and the push/pull operations) go through the gateway over HTTP with httpx.
"""

from __future__ import annotations

import functools
import json
import re
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from sync_helpers import SHOP_A, SHOP_B

from shopsync import invoice as inv
from shopsync_stack import mint_user_token, tokens
from shopsync_stack.settings import StackSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXPOSED = tuple(tomllib.loads((ROOT / "supabase" / "config.toml").read_text())["api"]["schemas"])
# The whole anon surface: liveness.
ANON_RPCS = frozenset({"health"})
SQL_PRINCIPALS = ("anon", "other_shop_staff", "viewer", "revoked_member")
TOKEN_PRINCIPALS = ("expired_token", "wrong_secret", "alg_none")
PRINCIPALS = SQL_PRINCIPALS + TOKEN_PRINCIPALS
TABLE_OPS = ("read", "insert", "update", "delete")
# Device heartbeat columns: a member's own calls may move them in its own shop, nothing else.
HEARTBEAT = ["last_seen_at", "last_pull_at", "last_push_at", "last_cursor", "pull_floor"]
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OWNER_A = "owner@shop-a.test"


# -- The catalog ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    tenant: str | None  # the column naming the shop: shop_id, or id for the shops table itself
    synced: bool

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    args: tuple[tuple[str, str], ...]  # (name, type) of the input arguments without defaults

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@functools.cache
def catalog() -> tuple[tuple[Table, ...], tuple[Function, ...], tuple[str, ...]]:
    """Tables, views and functions of the exposed schemas; names of the synced tables."""
    with psycopg.connect(load_settings().db_url) as conn:
        tenant_tables = {r[0] for r in conn.execute(
            """select distinct c.confrelid::regclass::text from pg_constraint c
               join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
               where c.contype = 'f' and a.attname = 'shop_id'""")}
        synced = tuple(r[0] for r in conn.execute("select table_name from shopsync.synced_tables order by 1"))
        tables = []
        for schema, name, has_shop_id in conn.execute(
            """select n.nspname, c.relname,
                      exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'shop_id'
                              and not a.attisdropped)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
               order by 1, 2""", (list(EXPOSED),)):
            qualified = f"{schema}.{name}" if schema != "public" else name
            tenant = "shop_id" if has_shop_id else ("id" if qualified in tenant_tables else None)
            tables.append(Table(schema, name, tenant, schema == "public" and name in synced))
        functions = [Function(schema, name, tuple(zip(names or [], types)))
                     for schema, name, names, types in conn.execute(
            """select n.nspname, p.proname,
                      (coalesce(p.proargnames, '{}'))[1:p.pronargs - p.pronargdefaults],
                      array(select format_type(t, null) from unnest(p.proargtypes) with ordinality u(t, i)
                            where i <= p.pronargs - p.pronargdefaults order by i)
               from pg_proc p join pg_namespace n on n.oid = p.pronamespace
               where n.nspname = any(%s) and p.prokind = 'f'
               order by 1, 2""", (list(EXPOSED),))]
    return tuple(tables), tuple(functions), synced


def _tables() -> tuple[Table, ...]:
    return catalog()[0]


def _functions() -> tuple[Function, ...]:
    return catalog()[1]


def _synced() -> tuple[str, ...]:
    return catalog()[2]


# -- The world: principals, devices, a row of each shop in every table --------------------------------
@dataclass
class Principal:
    name: str
    token: str
    claims: dict[str, Any] | None  # None: the token never gets past the gateway
    home: str | None  # the shop it is an active member of
    role: str  # database role the gateway would switch to
    device: str | None = None


@dataclass
class World:
    settings: StackSettings
    pg: psycopg.Connection  # autocommit, as postgres, for set-up and inspection
    probe: psycopg.Connection  # as postgres, transactions rolled back
    http: httpx.Client
    principals: dict[str, Principal]
    victim_device: str  # shop A owner's device
    series: dict[str, str]  # an invoice series per shop
    identifiers: dict[str, set[str]] = field(default_factory=dict)  # shop -> ids of its rows

    def headers(self, p: Principal) -> dict[str, str]:
        return {"apikey": self.settings.anon_key, "Authorization": f"Bearer {p.token}"}

    def rpc(self, p: Principal, fn: str, args: dict[str, Any]) -> httpx.Response:
        # A principal holds the secret of its own device only (never the victim's).
        own = p.device is not None and args.get("p_device_id") == p.device
        return self.http.post(f"/rest/v1/rpc/{fn}", json=args,
                              headers={**self.headers(p), **(_secret_header(p.device) if own else {})})


# device id -> the device_secret its registration returned (what that device alone holds).
_SECRETS: dict[str, str] = {}


def _secret_header(device: str | None) -> dict[str, str]:
    secret = _SECRETS.get(device or "")
    return {"x-device-secret": secret} if secret else {}


def _register(http: httpx.Client, settings: StackSettings, token: str, name: str, device: str | None = None) -> str:
    device = device or str(uuid.uuid4())
    resp = http.post("/rest/v1/rpc/sync_register_device", json={"p_device_id": device, "p_name": name},
                     headers={"apikey": settings.anon_key, "Authorization": f"Bearer {token}", **_secret_header(device)})
    assert resp.status_code == 200, resp.text
    if "device_secret" in resp.json():
        _SECRETS[device] = resp.json()["device_secret"]
    return device


def _push_ok(http: httpx.Client, settings: StackSettings, token: str, device: str, events: list[dict[str, Any]]) -> None:
    resp = http.post("/rest/v1/rpc/sync_push", json={"p_device_id": device, "p_events": events},
                     headers={"apikey": settings.anon_key, "Authorization": f"Bearer {token}", **_secret_header(device)})
    assert resp.status_code == 200, resp.text
    assert {r["status"] for r in resp.json()["results"]} == {"applied"}, resp.text


def _event(table: str, row_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "table": table, "op": "insert", "row_id": row_id, "data": data,
            "client_ts": "2026-01-01T00:00:00Z"}


def _seed_shop(http: httpx.Client, settings: StackSettings, pg: psycopg.Connection, shop: str,
               token: str, device: str) -> str:
    """Rows the seed lacks, so every table has something of the shop to aim at: an order with an
    item, a stock movement (and so a stock level), an invoice."""
    product = pg.execute("select id::text from public.products where shop_id = %s limit 1", (shop,)).fetchone()
    customer = pg.execute("select id::text from public.customers where shop_id = %s limit 1", (shop,)).fetchone()
    assert product and customer
    order_id, series = str(uuid.uuid4()), f"M{uuid.uuid4().hex[:8]}"
    lines = [{"description": "Mug", "quantity": "1", "unit_price": "12.00", "tax_rate": "19.00"}]
    t = inv.totals(lines)
    invoice: dict[str, Any] = {
        "id": str(uuid.uuid4()), "shop_id": shop, "device_id": device, "series": series, "number": 1,
        "issued_at": "2026-01-01T00:00:00.000000Z", "lines": lines, "subtotal": str(t.subtotal), "tax": str(t.tax),
        "total": str(t.total), "currency": "EUR", "kind": "invoice", "prev_hash": inv.GENESIS_HASH,
    }
    invoice["hash"] = inv.invoice_hash(invoice)
    _push_ok(http, settings, token, device, [
        _event("orders", order_id, {"customer_id": customer[0], "total": "12.00"}),
        _event("order_items", str(uuid.uuid4()), {"order_id": order_id, "product_id": product[0],
                                                  "quantity": "1", "unit_price": "12.00"}),
        _event("stock_movements", str(uuid.uuid4()), {"product_id": product[0], "delta": "5", "reason": "restock"}),
        _event("invoices", invoice["id"], {k: v for k, v in invoice.items() if k not in ("id", "shop_id")}),
    ])
    return series


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    settings = load_settings()
    with psycopg.connect(settings.db_url, autocommit=True) as pg, \
            psycopg.connect(settings.db_url) as probe, \
            httpx.Client(base_url=settings.api_url, timeout=30) as http:
        seats = pg.execute("select shop_id, max_devices from public.licenses").fetchall()
        pg.execute("update public.licenses set max_devices = 10000")
        revoked_id = uuid.uuid4()
        try:
            owner_a = mint_user_token(settings, OWNER_A)
            owner_b = mint_user_token(settings, "owner@shop-b.test")
            victim_device = _register(http, settings, owner_a, "victim till")
            series = {SHOP_A: _seed_shop(http, settings, pg, SHOP_A, owner_a, victim_device),
                      SHOP_B: _seed_shop(http, settings, pg, SHOP_B, owner_b,
                                         _register(http, settings, owner_b, "b till"))}

            # A member of shop A whose membership is revoked after the token was issued.
            email = f"revoked-{revoked_id.hex[:8]}@shop-a.test"
            pg.execute("insert into auth.users (id, aud, role, email, raw_app_meta_data, created_at)"
                       " values (%s, 'authenticated', 'authenticated', %s, '{}'::jsonb, now())", (revoked_id, email))
            pg.execute("insert into public.shop_members (shop_id, user_id, role) values (%s, %s, 'staff')",
                       (SHOP_A, revoked_id))
            revoked_token = mint_user_token(settings, email)
            revoked_device = _register(http, settings, revoked_token, "revoked till")
            pg.execute("update public.shop_members set revoked_at = now() where user_id = %s", (revoked_id,))

            now = int(time.time())
            claims_a = tokens.decode(owner_a, settings.jwt_secret)
            b64 = tokens._b64  # noqa: SLF001 - the same encoding the module signs with
            unsigned = (b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "."
                        + b64(json.dumps(claims_a).encode()) + ".")
            principals: dict[str, Principal] = {}
            for name, email_ in (("other_shop_staff", "staff@shop-b.test"), ("viewer", "viewer@shop-a.test")):
                token = mint_user_token(settings, email_)
                if name == "viewer":  # viewers take no seats: the owner registers the viewer's device
                    device = _register(http, settings, owner_a, f"{name} till")
                    _register(http, settings, token, f"{name} till", device)
                else:
                    device = _register(http, settings, token, f"{name} till")
                principals[name] = Principal(name, token, tokens.decode(token, settings.jwt_secret),
                                             SHOP_B if name == "other_shop_staff" else SHOP_A, "authenticated", device)
            principals["anon"] = Principal("anon", settings.anon_key, tokens.decode(settings.anon_key, settings.jwt_secret),
                                           None, "anon")
            principals["revoked_member"] = Principal("revoked_member", revoked_token,
                                                     tokens.decode(revoked_token, settings.jwt_secret), None,
                                                     "authenticated", revoked_device)
            principals["expired_token"] = Principal(
                "expired_token", tokens.encode({**claims_a, "iat": now - 7200, "exp": now - 3600}, settings.jwt_secret),
                None, None, "authenticated", victim_device)
            principals["wrong_secret"] = Principal(
                "wrong_secret", tokens.encode(claims_a, "not-the-secret-not-the-secret-not-the-secret"),
                None, None, "authenticated", victim_device)
            principals["alg_none"] = Principal("alg_none", unsigned, None, None, "authenticated", victim_device)

            w = World(settings, pg, probe, http, principals, victim_device, series)
            w.identifiers = _identifiers(pg)
            yield w
        finally:
            pg.execute("delete from auth.users where id = %s", (revoked_id,))
            for shop, seats_n in seats:
                pg.execute("update public.licenses set max_devices = %s where shop_id = %s", (seats_n, shop))


def _identifiers(pg: psycopg.Connection) -> dict[str, set[str]]:
    """Per shop, every uuid in its rows of the exposed tables (ids, references, the shop's own id)."""
    out: dict[str, set[str]] = {}
    for t in _tables():
        if t.tenant is None:
            continue
        for shop, row in pg.execute(sql.SQL("select {}::text, to_jsonb(t)::text from {} as t").format(
                sql.Identifier(t.tenant), t.ident)):
            out.setdefault(shop, set()).update(UUID_RE.findall(row))
    for shop, ids in out.items():
        ids.add(shop)
    return out


def _foreign_ids(w: World, p: Principal, sent: str) -> set[str]:
    """Identifiers of shops other than the principal's, less its own user id and what it sent."""
    own = {str(p.claims["sub"])} if p.claims and "sub" in p.claims else set()
    return {i for shop, ids in w.identifiers.items() if shop != p.home for i in ids} - own - set(UUID_RE.findall(sent))


def _snapshot(w: World, conn: psycopg.Connection, home: str | None) -> dict[str, Any]:
    """Every shop's rows in every exposed table (heartbeat columns left out for ``home`` only),
    and its change log, push results and audit log."""
    parts = []
    for t in _tables():
        tenant = sql.SQL("t.{}::text").format(sql.Identifier(t.tenant)) if t.tenant else sql.SQL("''")
        parts.append(sql.SQL(
            "select {name}, {tenant}, count(*), md5(string_agg(("
            "  case when {tenant} = %(home)s then to_jsonb(t) - %(hb)s::text[] else to_jsonb(t) end)::text, ','"
            "  order by to_jsonb(t)::text)) from {tbl} as t group by 2").format(
            name=sql.Literal(str(t)), tenant=tenant, tbl=t.ident))
    for side in ("shopsync.change_log", "shopsync.push_results", "shopsync.audit_log"):
        parts.append(sql.SQL("select {}, shop_id::text, count(*), ''::text from {} group by 2").format(
            sql.Literal(side), sql.SQL(side)))
    rows = conn.execute(sql.SQL(" union all ").join(parts), {"home": home or "", "hb": HEARTBEAT}).fetchall()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


# -- Table operations in SQL as the principal ----------------------------------------------------------
def _as(conn: psycopg.Connection, p: Principal) -> None:
    assert p.claims is not None
    conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                 (p.role, json.dumps(p.claims)))


@dataclass
class Outcome:
    rows: int | None = None
    error: str | None = None  # SQLSTATE


def _attempt(conn: psycopg.Connection, p: Principal, query: sql.Composable, params: tuple[Any, ...],
             *, triggers: bool) -> Outcome:
    """Run ``query`` as ``p`` in a savepoint that is always rolled back (so role and effects end)."""
    outcome = Outcome()
    try:
        with conn.transaction() as tx:
            if not triggers:
                conn.execute("set local session_replication_role = replica")
            _as(conn, p)
            cur = conn.execute(query, params)
            outcome = Outcome(rows=cur.rowcount)
            raise psycopg.Rollback(tx)
    except psycopg.Error as exc:
        return Outcome(error=exc.sqlstate)
    return outcome


def _victim_row(conn: psycopg.Connection, t: Table, victim: str) -> dict[str, Any]:
    assert t.tenant is not None
    row = conn.execute(sql.SQL("select to_jsonb(t) from {} as t where {} = %s limit 1").format(
        t.ident, sql.Identifier(t.tenant)), (victim,)).fetchone()
    assert row, f"{t} has no row of shop {victim} to probe with (the fixture adds one for each table)"
    data: dict[str, Any] = row[0]
    if "id" in data:
        data["id"] = str(uuid.uuid4())
    return data


def _cells_sql() -> list[Any]:
    return [pytest.param(t, p, op, id=f"{t}-{p}-{op}") for t in _tables() for p in SQL_PRINCIPALS for op in TABLE_OPS]


@pytest.mark.parametrize("table, who, op", _cells_sql())
def test_table_operation_as_principal(world: World, table: Table, who: str, op: str) -> None:
    p = world.principals[who]
    conn = world.probe
    victim = SHOP_A if p.home != SHOP_A else SHOP_B  # the shop that is not the principal's
    with conn.transaction(force_rollback=True):
        before = _snapshot(world, conn, None)
        if op == "read":
            seen: dict[str | None, int] = {}
            try:
                with conn.transaction() as tx:
                    _as(conn, p)
                    if table.tenant is None:
                        seen = {None: conn.execute(sql.SQL("select count(*) from {}").format(table.ident)).fetchall()[0][0]}
                    else:
                        seen = dict(conn.execute(sql.SQL("select {}::text, count(*) from {} group by 1").format(
                            sql.Identifier(table.tenant), table.ident)).fetchall())
                    raise psycopg.Rollback(tx)
            except psycopg.errors.InsufficientPrivilege:
                seen = {}
            foreign = {k: n for k, n in seen.items() if k != p.home and n}
            assert not foreign, f"{who} sees rows of another shop in {table}: {foreign}"
            if table.synced and p.home is not None:  # the probe is not vacuous: own rows are visible
                own = conn.execute(sql.SQL("select count(*) from {} where shop_id = %s").format(table.ident),
                                   (p.home,)).fetchone()
                assert own and own[0] > 0 and seen.get(p.home) == own[0], (seen, own)
        else:
            assert table.tenant is not None or op != "insert"
            # Every shop but its own, and its own too when its role there writes nothing.
            shop_role = (p.claims or {}).get("app_metadata", {}).get("shop_role")
            targets = [s for s in (SHOP_A, SHOP_B) if s != p.home or shop_role == "viewer"]
            for shop in targets:
                for triggers in (True, False):
                    if op == "insert":
                        assert table.tenant is not None
                        row = _victim_row(conn, table, shop)
                        query: sql.Composable = sql.SQL(
                            "insert into {t} select * from jsonb_populate_record(null::{t}, %s::jsonb)").format(
                            t=table.ident)
                        params: tuple[Any, ...] = (json.dumps(row),)
                    elif op == "update":
                        col = sql.Identifier(table.tenant or "id")
                        query = sql.SQL("update {} set {} = {} where {}::text = %s").format(table.ident, col, col, col)
                        params = (shop,)
                    else:
                        col = sql.Identifier(table.tenant or "id")
                        query = sql.SQL("delete from {} where {}::text = %s").format(table.ident, col)
                        params = (shop,)
                    got = _attempt(conn, p, query, params, triggers=triggers)
                    if op == "insert":
                        ok = got.error == "42501" if not triggers else got.error is not None
                    else:
                        ok = got.error == "42501" or got.rows == 0
                    assert ok, f"{who} {op} on {table} of shop {shop} (triggers {'on' if triggers else 'off'}): {got}"
            if op == "update" and p.home is not None and p.home != victim and table.tenant == "shop_id":
                # Moving one of its own rows into the other shop.
                for triggers in (True, False):
                    got = _attempt(conn, p, sql.SQL("update {} set shop_id = %s where shop_id = %s").format(
                        table.ident), (victim, p.home), triggers=triggers)
                    assert got.error is not None or got.rows == 0, f"{who} moved {table} rows into {victim}: {got}"
        after = _snapshot(world, conn, None)
        assert after == before, f"{who} {op} on {table} changed " + ", ".join(
            f"{k}" for k in set(before) | set(after) if before.get(k) != after.get(k))


# -- Tables over HTTP for the tokens that never reach the database ---------------------------------------
def _cells_http_tables() -> list[Any]:
    return [pytest.param(t, p, op, id=f"{t}-{p}-{op}") for t in _tables() for p in TOKEN_PRINCIPALS for op in TABLE_OPS]


@pytest.mark.parametrize("table, who, op", _cells_http_tables())
def test_table_endpoint_refuses_bad_token(world: World, table: Table, who: str, op: str) -> None:
    p = world.principals[who]
    before = _snapshot(world, world.pg, None)
    method = {"read": "GET", "insert": "POST", "update": "PATCH", "delete": "DELETE"}[op]
    col = table.tenant or "id"
    body = None if op in ("read", "delete") else json.dumps({col: SHOP_A})
    resp = world.http.request(method, f"/rest/v1/{table.name}", params={col: f"eq.{SHOP_A}"},
                              headers={**world.headers(p), "Accept-Profile": table.schema,
                                       "Content-Profile": table.schema, "Content-Type": "application/json"},
                              content=body)
    assert (resp.status_code, resp.json().get("code")) == (401, "PGRST301"), resp.text
    assert _snapshot(world, world.pg, None) == before


# -- Every RPC as every principal --------------------------------------------------------------------
def _arg_value(w: World, name: str, typ: str) -> Any:
    """An argument aimed at shop A: its owner's device, its invoice series, its owner's id."""
    if typ == "uuid":
        return w.victim_device
    if typ in ("bigint", "integer", "smallint", "numeric"):
        return 0
    if typ in ("json", "jsonb"):
        owner = w.pg.execute("select id::text from auth.users where email = %s", (OWNER_A,)).fetchone()
        return {"user_id": owner[0] if owner else None, "claims": {}, "authentication_method": "password"}
    if typ == "boolean":
        return True
    return w.series[SHOP_A]


def _expect_denied(resp: httpx.Response, status: int, code: str, detail: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code, body
    if detail is not None:
        assert body["details"] == detail, body


def _check_allowed(w: World, p: Principal, resp: httpx.Response, what: str, sent: Any) -> None:
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text}"
    leaked = set(UUID_RE.findall(resp.text)) & _foreign_ids(w, p, json.dumps(sent))
    assert not leaked, f"{what} as {p.name} returned another shop's identifiers: {sorted(leaked)[:5]}"


def _cells_rpc() -> list[Any]:
    return [pytest.param(f, p, id=f"{f}-{p}") for f in _functions() for p in PRINCIPALS]


@pytest.mark.parametrize("fn, who", _cells_rpc())
def test_rpc_as_principal(world: World, fn: Function, who: str) -> None:
    p = world.principals[who]
    args = {name: _arg_value(world, name, typ) for name, typ in fn.args}
    before = _snapshot(world, world.pg, p.home)
    resp = world.http.post(f"/rest/v1/rpc/{fn.name}", json=args,
                           headers={**world.headers(p), "Content-Profile": fn.schema})
    if p.claims is None:
        _expect_denied(resp, 401, "PGRST301")
    else:
        may = world.pg.execute(
            "select has_function_privilege(%s, p.oid, 'execute') from pg_proc p"
            " join pg_namespace n on n.oid = p.pronamespace where n.nspname = %s and p.proname = %s",
            (p.role, fn.schema, fn.name)).fetchone()
        assert may is not None
        if p.role == "anon":
            assert not may[0] or fn.name in ANON_RPCS, f"anon may execute {fn}, outside {sorted(ANON_RPCS)}"
        if not may[0]:
            _expect_denied(resp, 401 if p.role == "anon" else 403, "42501")
        else:
            _check_allowed(world, p, resp, str(fn), args)
    assert _snapshot(world, world.pg, p.home) == before, f"{fn} as {who} changed data"


def test_anon_surface_is_exactly_the_allowed_functions(world: World) -> None:
    callable_by_anon = {r[0] for r in world.pg.execute(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = any(%s) and has_function_privilege('anon', p.oid, 'execute')", (list(EXPOSED),))}
    assert callable_by_anon == ANON_RPCS
    resp = world.rpc(world.principals["anon"], "health", {})
    assert resp.status_code == 200 and resp.json()["ok"] is True


# -- Push and pull ------------------------------------------------------------------------------------
def _push_events(w: World, table: str) -> list[dict[str, Any]]:
    """Events aimed at shop A's row of ``table``: update and delete at its current version, and an
    insert reusing its id with its own values."""
    row = w.pg.execute(sql.SQL("select to_jsonb(t) from {} as t where shop_id = %s order by id limit 1").format(
        sql.Identifier("public", table)), (SHOP_A,)).fetchone()
    assert row, f"{table} has no row of shop A"
    cols = {r[0] for r in w.pg.execute("select column_name from shopsync.table_columns(%s) where not is_system",
                                       (table,))}
    data = {k: v for k, v in row[0].items() if k in cols}
    base = {"client_ts": "2026-01-01T00:00:00Z", "table": table, "row_id": row[0]["id"]}
    return [
        {**base, "event_id": str(uuid.uuid4()), "op": "update", "base_version": row[0]["version"], "data": data},
        {**base, "event_id": str(uuid.uuid4()), "op": "delete", "base_version": row[0]["version"], "data": {}},
        {**base, "event_id": str(uuid.uuid4()), "op": "insert", "data": data},
    ]


def _expect_token_level(w: World, p: Principal, resp: httpx.Response, *, writes: bool) -> bool:
    """The outcome every principal but a writing member of the target shop gets. True when handled."""
    if p.claims is None:
        _expect_denied(resp, 401, "PGRST301")
    elif p.role == "anon":
        _expect_denied(resp, 401, "42501")
    elif p.name == "revoked_member":
        _expect_denied(resp, 403, "PT403", "not_a_member")
    elif writes and p.home == SHOP_A:  # a member of the shop with a role that may not push
        _expect_denied(resp, 403, "PT403", "role_forbidden")
    else:
        return False
    return True


def _cells_push() -> list[Any]:
    return [pytest.param(t, p, id=f"{t}-{p}-push") for t in _synced() for p in PRINCIPALS]


@pytest.mark.parametrize("table, who", _cells_push())
def test_push_as_principal(world: World, table: str, who: str) -> None:
    p = world.principals[who]
    events = _push_events(world, table)
    before = _snapshot(world, world.pg, p.home)
    assert p.home != SHOP_A or p.name == "viewer"
    args = {"p_device_id": p.device or world.victim_device, "p_events": events}
    resp = world.rpc(p, "sync_push", args)
    if not _expect_token_level(world, p, resp, writes=True):
        # A member of another shop, on its own device: every event refused, nothing of shop A returned.
        assert resp.status_code == 200, resp.text
        results = resp.json()["results"]
        assert [r["status"] for r in results] in (["rejected", "rejected", "conflict"], ["rejected"] * 3), results
        assert all(r["server_row"] is None for r in results), results
        _check_allowed(world, p, resp, "sync_push", args)
        # ... and on shop A's device: refused as a whole.
        stolen = world.rpc(p, "sync_push", {"p_device_id": world.victim_device, "p_events": events})
        _expect_denied(stolen, 404, "PT404", "device_not_registered")
    after = _snapshot(world, world.pg, p.home)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # A refused event leaves nothing; only another shop's member's own push bookkeeping may move.
    allowed = {("shopsync.push_results", p.home)} if p.home == SHOP_B else set()
    assert changed <= allowed, f"push of {table} as {who} changed {changed}"


@pytest.mark.parametrize("who", PRINCIPALS)
def test_pull_as_principal(world: World, who: str) -> None:
    p = world.principals[who]
    before = _snapshot(world, world.pg, p.home)
    args = {"p_device_id": p.device or world.victim_device, "p_cursor": 0, "p_limit": 5000}
    resp = world.rpc(p, "sync_pull", args)
    if not _expect_token_level(world, p, resp, writes=False):
        assert resp.status_code == 200, resp.text
        changes = resp.json()["changes"]
        assert changes, "a member pulls its shop's changes"
        assert {c["row"]["shop_id"] for c in changes if "shop_id" in c["row"]} == {p.home}
        _check_allowed(world, p, resp, "sync_pull", args)
        if p.home != SHOP_A:
            stolen = world.rpc(p, "sync_pull", {"p_device_id": world.victim_device, "p_cursor": 0})
            _expect_denied(stolen, 404, "PT404", "device_not_registered")
    assert _snapshot(world, world.pg, p.home) == before


def test_matrix_covers_every_exposed_table_and_function(world: World) -> None:
    """The generated matrix is not empty and each table has rows of both shops to aim at."""
    tables, functions, synced = catalog()
    assert {t.name for t in tables} >= set(synced) and len(functions) >= 10
    for t in tables:
        assert t.tenant is not None, f"{t}: no shop_id column; say how it is isolated"
        for shop in (SHOP_A, SHOP_B):
            n = world.pg.execute(sql.SQL("select count(*) from {} where {} = %s").format(
                t.ident, sql.Identifier(t.tenant)), (shop,)).fetchone()
            assert n and n[0] > 0, f"{t} has no row of shop {shop}"
