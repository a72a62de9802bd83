"""The insider threat matrix (issue 12, item 10), beside the isolation matrix: what a member of the
same shop can do to it.

Actors: the shop's owner, a staff member, a viewer, a revoked member (revoked after their token and
their till were issued) and another device of the same shop (a staff login on a second till,
sending that till's own secret). Each tries every act below; the cells come from ``EXPECTED`` (one
row per act, one outcome per actor), so a new act or actor is one line. RPCs go through the real
gateway (as PostgREST would run them), table writes run in SQL as the actor's token would, in a
transaction that is always rolled back. One shop set-up per module.

An outcome is a short string:
  * ``"<status> <code> <details>"``: the HTTP answer of a refused call (PostgREST's error body);
  * ``"ok"`` / ``"ok <status>/<reason>"``: allowed (for a push: its first result);
  * ``"rows <n>"``: a table write that RLS lets touch n rows (0: the row is invisible to the actor);
  * ``"sql <sqlstate> <details>"``: a table write refused by Postgres.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sync_helpers import SHOP_A, claims_of, event

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings

ACTORS = ("owner", "staff", "viewer", "revoked", "other_device")

# act -> expected outcome per actor, in ACTORS order. "<victim>" is the owner's till: every actor
# knows its id (pulled rows carry last_device_id), none holds its secret.
DENIED = "403 PT403 device_credential_invalid"
GONE = "403 PT403 not_a_member"
EXPECTED: dict[str, tuple[str, ...]] = {
    # Act as another device (its id, without its secret).
    "push_as_victim": (DENIED, DENIED, DENIED, GONE, DENIED),
    "pull_as_victim": (DENIED, DENIED, DENIED, GONE, DENIED),
    "rotate_victims_secret": (DENIED, DENIED, DENIED, GONE, DENIED),
    "register_as_victim": (DENIED, DENIED, DENIED, GONE, DENIED),
    "reset_victims_credential": ("ok", "403 PT403 role_forbidden", "403 PT403 role_forbidden", GONE,
                                 "403 PT403 role_forbidden"),
    # Change members.
    "add_another_shops_user_as_owner": ("rows 1", "sql 42501", "sql 42501", "sql 42501", "sql 42501"),
    "promote_a_member_to_owner": ("rows 1", "rows 0", "rows 0", "rows 0", "rows 0"),
    "revoke_the_owner": ("rows 1", "rows 0", "rows 0", "rows 0", "rows 0"),
    # Change devices.
    "register_a_new_device": ("ok", "ok", "403 PT403 viewer_cannot_register", GONE, "ok"),
    "revoke_the_victim_device": ("rows 1", "rows 0", "rows 0", "rows 0", "rows 0"),
    "hand_the_victim_device_to_staff": ("sql 42501 server_owned_column", "rows 0", "rows 0", "rows 0", "rows 0"),
    "rewind_the_victim_devices_pull_floor": ("sql 42501 server_owned_column", "rows 0", "rows 0", "rows 0", "rows 0"),
    # Change licences.
    "raise_the_seat_count": ("rows 0", "rows 0", "rows 0", "rows 0", "rows 0"),
    "insert_a_licence": ("sql 42501", "sql 42501", "sql 42501", "sql 42501", "sql 42501"),
    # Write server-owned columns.
    "backdate_a_membership": ("ok server set created_at and added_by", "sql 42501", "sql 42501", "sql 42501",
                              "sql 42501"),
    "push_a_rows_version": ("ok rejected/read_only_column", "ok rejected/read_only_column",
                            "403 PT403 role_forbidden", GONE, "ok rejected/read_only_column"),
    # Send poison values (on one's own device): that event alone is rejected.
    "push_a_nul": ("ok rejected/invalid_value", "ok rejected/invalid_value", "403 PT403 role_forbidden", GONE,
                   "ok rejected/invalid_value"),
    "push_a_lone_surrogate": ("ok rejected/invalid_value", "ok rejected/invalid_value", "403 PT403 role_forbidden",
                              GONE, "ok rejected/invalid_value"),
    "push_a_year_10000_timestamp": ("ok rejected/invalid_value", "ok rejected/invalid_value",
                                    "403 PT403 role_forbidden", GONE, "ok rejected/invalid_value"),
}


@dataclass
class Actor:
    name: str
    email: str
    token: str
    claims: dict[str, Any]
    device: str  # its own till
    secret: str  # that till's secret


@dataclass
class Shop:
    settings: StackSettings
    pg: psycopg.Connection  # autocommit, as postgres
    sql: psycopg.Connection  # transactions always rolled back
    http: httpx.Client
    actors: dict[str, Actor]
    victim: str  # the owner's till
    victim_secret: str
    owner_id: str
    staff_id: str
    foreign_user: str  # a user of shop B

    def call(self, actor: Actor, fn: str, args: dict[str, Any], *, own_secret: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {actor.token}"}
        if own_secret and (args.get("p_device_id") == actor.device or actor.name == "other_device"):
            headers["x-device-secret"] = actor.secret  # another device sends its own till's secret
        return self.http.post(f"/rest/v1/rpc/{fn}", content=json.dumps(args).encode(), headers=headers)

    def register(self, token: str, device: str, name: str, secret: str = "") -> str:
        resp = self.http.post("/rest/v1/rpc/sync_register_device", json={"p_device_id": device, "p_name": name},
                              headers={"Authorization": f"Bearer {token}", **({"x-device-secret": secret} if secret else {})})
        assert resp.status_code == 200, resp.text
        return str(resp.json().get("device_secret") or secret)


def _answer(resp: httpx.Response) -> str:
    if resp.status_code >= 400:
        body = resp.json()
        return " ".join(str(x) for x in (resp.status_code, body.get("code"), body.get("details")) if x)
    body = resp.json()
    if isinstance(body, dict) and "results" in body:
        first = body["results"][0]
        return f"ok {first['status']}/{first['reason']}" if first["status"] != "applied" else "ok"
    return "ok"


def _as(shop: Shop, actor: Actor, query: str, params: tuple[Any, ...],
        check: Callable[[psycopg.Cursor[Any]], str] | None = None) -> str:
    """``query`` as the actor's token would run it, always rolled back."""
    try:
        with shop.sql.transaction() as tx:
            shop.sql.execute("select set_config('role', 'authenticated', true),"
                             " set_config('request.jwt.claims', %s, true)", (json.dumps(actor.claims),))
            cur = shop.sql.execute(query, params)
            outcome = check(cur) if check else f"rows {cur.rowcount}"
            raise psycopg.Rollback(tx)
    except psycopg.Error as exc:
        detail = exc.diag.message_detail if exc.diag.message_detail == "server_owned_column" else None
        return " ".join(x for x in ("sql", exc.sqlstate or "?", detail) if x)
    return outcome


def _customer_event(data: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    return [event("customers", "insert", str(uuid.uuid4()), data, client_ts="2026-01-01T00:00:00Z", **extra)]


def _act(shop: Shop, actor: Actor, act: str) -> str:
    v, me = shop.victim, actor.device
    if act == "push_as_victim":
        return _answer(shop.call(actor, "sync_push", {"p_device_id": v, "p_events": _customer_event({"name": "x"})}))
    if act == "pull_as_victim":
        return _answer(shop.call(actor, "sync_pull", {"p_device_id": v, "p_cursor": 0}))
    if act == "rotate_victims_secret":
        return _answer(shop.call(actor, "sync_rotate_device_secret", {"p_device_id": v}))
    if act == "register_as_victim":
        return _answer(shop.call(actor, "sync_register_device", {"p_device_id": v, "p_name": "stolen"}))
    if act == "reset_victims_credential":
        # Aimed at a till of its own (an allowed reset must not spoil the other cells).
        target = str(uuid.uuid4())
        shop.register(shop.actors["owner"].token, target, "reset target")
        return _answer(shop.call(actor, "sync_reset_device_credential", {"p_device_id": target}))
    if act == "add_another_shops_user_as_owner":
        return _as(shop, actor, "insert into public.shop_members (shop_id, user_id, role) values (%s, %s, 'owner')",
                   (SHOP_A, shop.foreign_user))
    if act == "promote_a_member_to_owner":
        return _as(shop, actor, "update public.shop_members set role = 'owner' where shop_id = %s and user_id = %s",
                   (SHOP_A, shop.staff_id))
    if act == "revoke_the_owner":
        return _as(shop, actor, "update public.shop_members set revoked_at = now() where shop_id = %s and user_id = %s",
                   (SHOP_A, shop.owner_id))
    if act == "register_a_new_device":
        return _answer(shop.call(actor, "sync_register_device", {"p_device_id": str(uuid.uuid4()), "p_name": "new"},
                                 own_secret=False))
    if act == "revoke_the_victim_device":
        return _as(shop, actor, "update public.devices set revoked_at = now() where id = %s", (v,))
    if act == "hand_the_victim_device_to_staff":
        return _as(shop, actor, "update public.devices set user_id = %s where id = %s", (shop.staff_id, v))
    if act == "rewind_the_victim_devices_pull_floor":
        return _as(shop, actor, "update public.devices set pull_floor = -1 where id = %s", (v,))
    if act == "raise_the_seat_count":
        return _as(shop, actor, "update public.licenses set max_devices = 10000 where shop_id = %s", (SHOP_A,))
    if act == "insert_a_licence":
        return _as(shop, actor, "insert into public.licenses (shop_id, max_devices, valid_until)"
                   " values (%s, 10000, now() + interval '10 years')", (SHOP_A,))
    if act == "backdate_a_membership":
        def server_set(cur: psycopg.Cursor[Any]) -> str:
            row = cur.fetchone()
            assert row is not None
            return "ok server set created_at and added_by" if row == (True, True) else f"kept what was sent: {row}"
        return _as(shop, actor, "insert into public.shop_members (shop_id, user_id, role, created_at, added_by)"
                   " values (%s, %s, 'staff', '2000-01-01', %s)"
                   " returning created_at > now() - interval '1 hour', added_by = auth.uid()",
                   (SHOP_A, shop.foreign_user, shop.staff_id), server_set)
    if act == "push_a_rows_version":
        return _answer(shop.call(actor, "sync_push", {"p_device_id": me, "p_events": _customer_event(
            {"name": "x", "version": 99})}))
    if act == "push_a_nul":
        return _answer(shop.call(actor, "sync_push", {"p_device_id": me, "p_events": _customer_event(
            {"name": "nul\u0000"})}))
    if act == "push_a_lone_surrogate":
        # As a JS client writes it (JSON.stringify escapes the lone surrogate).
        return _answer(shop.call(actor, "sync_push", {"p_device_id": me, "p_events": _customer_event(
            {"name": "half \ud800"})}))
    if act == "push_a_year_10000_timestamp":
        series = f"INS-{uuid.uuid4().hex[:8]}"
        return _answer(shop.call(actor, "sync_push", {"p_device_id": me, "p_events": [event(
            "invoices", "insert", str(uuid.uuid4()), {
                "series": series, "number": 1, "issued_at": "10000-01-01T00:00:00Z", "lines": [], "subtotal": 0,
                "tax": 0, "total": 0, "prev_hash": "0" * 64, "hash": "0" * 64}, client_ts="2026-01-01T00:00:00Z")]}))
    raise AssertionError(f"no such act: {act}")


@pytest.fixture(scope="module")
def shop(settings: StackSettings) -> Iterator[Shop]:
    with psycopg.connect(settings.db_url, autocommit=True) as pg, psycopg.connect(settings.db_url) as conn, \
            httpx.Client(base_url=settings.api_url, timeout=60, headers={
                "apikey": settings.anon_key, "Content-Type": "application/json"}) as http:
        seats = pg.execute("select max_devices from public.licenses where shop_id = %s", (SHOP_A,)).fetchone()
        assert seats is not None
        pg.execute("update public.licenses set max_devices = max_devices + 100 where shop_id = %s", (SHOP_A,))
        revoked_id = uuid.uuid4()
        revoked_email = f"insider-revoked-{revoked_id.hex[:8]}@shop-a.test"
        pg.execute("insert into auth.users (id, aud, role, email, raw_app_meta_data, created_at)"
                   " values (%s, 'authenticated', 'authenticated', %s, '{}'::jsonb, now())", (revoked_id, revoked_email))
        pg.execute("insert into public.shop_members (shop_id, user_id, role) values (%s, %s, 'staff')",
                   (SHOP_A, revoked_id))
        try:
            s = Shop(settings, pg, conn, http, {}, "", "", "", "", "")
            ids: dict[str, str] = dict(pg.execute(
                "select email, id::text from auth.users where email in"
                " ('owner@shop-a.test', 'staff@shop-a.test', 'staff@shop-b.test')").fetchall())
            s.owner_id, s.staff_id, s.foreign_user = (ids["owner@shop-a.test"], ids["staff@shop-a.test"],
                                                      ids["staff@shop-b.test"])
            owner_token = mint_user_token(settings, "owner@shop-a.test")
            s.victim = str(uuid.uuid4())
            s.victim_secret = s.register(owner_token, s.victim, "the owner's till")
            emails = {"owner": "owner@shop-a.test", "staff": "staff@shop-a.test", "viewer": "viewer@shop-a.test",
                      "revoked": revoked_email, "other_device": "staff@shop-a.test"}
            for name, email in emails.items():
                token = mint_user_token(settings, email)
                device, secret = str(uuid.uuid4()), ""
                if name == "viewer":  # viewers take no seats: the owner registers the viewer's till
                    secret = s.register(owner_token, device, "viewer till")
                secret = s.register(token, device, f"{name} till", secret)
                s.actors[name] = Actor(name, email, token, claims_of(settings, email), device, secret)
            # Revoked after the token and the till were issued.
            pg.execute("update public.shop_members set revoked_at = now() where user_id = %s", (revoked_id,))
            yield s
        finally:
            conn.rollback()
            pg.execute("delete from auth.users where id = %s", (revoked_id,))
            pg.execute("update public.licenses set max_devices = %s where shop_id = %s", (seats[0], SHOP_A))


def _cells() -> list[Any]:
    return [pytest.param(act, actor, expected[i], id=f"{act}-{actor}")
            for act, expected in EXPECTED.items() for i, actor in enumerate(ACTORS)]


@pytest.mark.parametrize("act, actor, expected", _cells())
def test_insider(shop: Shop, act: str, actor: str, expected: str) -> None:
    assert _act(shop, shop.actors[actor], act) == expected


def test_the_victim_device_still_works_with_its_own_secret(shop: Shop) -> None:
    """After the whole matrix: nothing an insider did took the till from its holder."""
    resp = shop.http.post("/rest/v1/rpc/sync_pull", json={"p_device_id": shop.victim, "p_cursor": 0}, headers={
        "Authorization": f"Bearer {shop.actors['owner'].token}", "x-device-secret": shop.victim_secret})
    assert resp.status_code == 200, resp.text
    row = shop.pg.execute("select revoked_at is null, user_id::text from public.devices where id = %s",
                          (shop.victim,)).fetchone()
    assert row == (True, shop.owner_id)
