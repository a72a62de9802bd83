"""Database errors reach supabase-py as PostgREST's error body with PostgREST's HTTP status."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from supabase import Client

from shopsync_stack.settings import StackSettings

from ..conftest import User

RAISE = "returns void language plpgsql as $$ begin raise exception 'boom' using errcode = '{code}'; end $$"


def _post(settings: StackSettings, fn: str, body: bytes | str = b"{}", token: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{settings.api_url}/rest/v1/rpc/{fn}",
        content=body,
        headers={"apikey": settings.anon_key, "Authorization": f"Bearer {token or settings.anon_key}",
                 "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [("P0001", 400), ("23505", 409), ("23503", 409), ("PT402", 402), ("PT429", 429), ("XX000", 500),
     ("P0002", 500), ("40001", 500)],
)
def test_sqlstate_maps_to_postgrest_status(
    sqlstate: str, status: int, settings: StackSettings, anon: Client, sql_function: Callable[[str, str], None]
) -> None:
    sql_function("test_raise()", RAISE.format(code=sqlstate))
    with pytest.raises(APIError) as info:
        anon.rpc("test_raise").execute()
    assert info.value.code == sqlstate
    assert info.value.message == "boom"
    resp = _post(settings, "test_raise")
    assert resp.status_code == status
    assert resp.json() == {"code": sqlstate, "message": "boom", "details": None, "hint": None}


def test_error_detail_and_hint_reach_the_client(anon: Client, sql_function: Callable[[str, str], None]) -> None:
    sql_function("test_raise_detail()", "returns void language plpgsql as $$ begin raise exception 'out of stock'"
                 " using detail = 'sku 42', hint = 'restock first'; end $$")
    with pytest.raises(APIError) as info:
        anon.rpc("test_raise_detail").execute()
    assert (info.value.code, info.value.message, info.value.details, info.value.hint) == (
        "P0001", "out of stock", "sku 42", "restock first")


def test_unique_violation_from_a_real_constraint_is_409(
    settings: StackSettings, sql_function: Callable[[str, str], None]
) -> None:
    # A real primary key rather than a raised code: insert twice into a temporary table.
    sql_function("test_insert_twice()", "returns void language plpgsql as $$ begin"
                 " create temporary table t (id int primary key) on commit drop;"
                 " insert into t values (1); insert into t values (1); end $$")
    resp = _post(settings, "test_insert_twice")
    assert resp.status_code == 409
    assert resp.json()["code"] == "23505"


def test_insufficient_privilege_is_401_for_anon_and_403_for_a_user(
    settings: StackSettings,
    db: psycopg.Connection,
    make_user: Callable[..., User],
    sql_function: Callable[[str, str], None],
) -> None:
    sql_function("test_private()", "returns int language sql as $$ select 1 $$")
    db.execute("revoke execute on function public.test_private() from public, anon, authenticated")
    as_anon = _post(settings, "test_private")
    assert (as_anon.status_code, as_anon.json()["code"]) == (401, "42501")
    as_user = _post(settings, "test_private", token=make_user().token)
    assert (as_user.status_code, as_user.json()["code"]) == (403, "42501")


def test_unknown_function_is_404_pgrst202(settings: StackSettings, anon: Client) -> None:
    with pytest.raises(APIError) as info:
        anon.rpc("no_such_function", {"a": 1}).execute()
    assert info.value.code == "PGRST202"
    assert _post(settings, "no_such_function").status_code == 404


def test_malformed_json_body_is_400_pgrst102(settings: StackSettings) -> None:
    resp = _post(settings, "health", body=b'{"a": ')
    assert resp.status_code == 400
    assert resp.json()["code"] == "PGRST102"


def test_table_endpoints_answer_404_saying_rest_is_rpc_only(settings: StackSettings, anon: Client) -> None:
    resp = httpx.get(f"{settings.api_url}/rest/v1/customers", headers={"apikey": settings.anon_key})
    assert resp.status_code == 404
    assert "RPC only" in resp.json()["message"]
    with pytest.raises(APIError) as info:
        anon.table("customers").select("*").execute()
    assert "RPC only" in (info.value.message or "")
