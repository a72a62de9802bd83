"""RPC calls through supabase-py: verbs, result shapes, argument types, request context, concurrency."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import Client

from shopsync_stack.settings import StackSettings

from ..conftest import User, as_object


def test_get_calls_a_stable_function(anon: Client, sql_function: Callable[[str, str], None]) -> None:
    sql_function("test_double(n integer)", "returns integer language sql stable as $$ select n * 2 $$")
    assert anon.rpc("test_double", {"n": 21}, get=True).execute().data == 42


def test_get_runs_read_only(anon: Client, sql_function: Callable[[str, str], None]) -> None:
    sql_function("test_read_only()", "returns text language sql stable as $$"
                 " select current_setting('transaction_read_only') $$")
    assert anon.rpc("test_read_only", {}, get=True).execute().data == "on"
    assert anon.rpc("test_read_only", {}).execute().data == "off"


def test_get_on_a_volatile_function_is_refused_with_405(
    settings: StackSettings, anon: Client, sql_function: Callable[[str, str], None]
) -> None:
    sql_function("test_volatile()", "returns integer language sql volatile as $$ select 1 $$")
    resp = httpx.get(f"{settings.api_url}/rest/v1/rpc/test_volatile", headers={"apikey": settings.anon_key})
    assert resp.status_code == 405
    with pytest.raises(APIError):
        anon.rpc("test_volatile", {}, get=True).execute()
    assert anon.rpc("test_volatile", {}).execute().data == 1


def test_setof_returns_a_json_array(anon: Client, sql_function: Callable[[str, str], None]) -> None:
    sql_function("test_rows(n integer)", "returns table (i integer, label text) language sql as $$"
                 " select g, 'row ' || g from generate_series(1, n) g $$")
    assert anon.rpc("test_rows", {"n": 3}).execute().data == [
        {"i": 1, "label": "row 1"}, {"i": 2, "label": "row 2"}, {"i": 3, "label": "row 3"}]
    assert anon.rpc("test_rows", {"n": 0}).execute().data == []


def test_scalar_returns_the_bare_value(anon: Client, sql_function: Callable[[str, str], None]) -> None:
    sql_function("test_greet(name text)", "returns text language sql as $$ select 'hello ' || name $$")
    assert anon.rpc("test_greet", {"name": "ada"}).execute().data == "hello ada"


def test_void_answers_204_with_no_body(
    settings: StackSettings, anon: Client, sql_function: Callable[[str, str], None]
) -> None:
    sql_function("test_nothing()", "returns void language sql as $$ select $$")
    resp = httpx.post(f"{settings.api_url}/rest/v1/rpc/test_nothing", json={}, headers={"apikey": settings.anon_key})
    assert (resp.status_code, resp.content) == (204, b"")
    # postgrest-py turns an empty body into an empty list rather than failing on it.
    assert anon.rpc("test_nothing", {}).execute().data == []


def test_integer_arguments_are_typed_from_pg_catalog(anon: Client, sql_function: Callable[[str, str], None]) -> None:
    sql_function("test_big(n bigint)", "returns text language sql as $$ select pg_typeof(n)::text || ':' || n $$")
    assert anon.rpc("test_big", {"n": 5_000_000_000}).execute().data == "bigint:5000000000"
    # 70000 does not fit a smallint: an argument guessed as smallint would fail here.
    sql_function("test_int(n integer)", "returns text language sql as $$ select pg_typeof(n)::text || ':' || n $$")
    assert anon.rpc("test_int", {"n": 70_000}).execute().data == "integer:70000"
    assert anon.rpc("test_int", {"n": 7}).execute().data == "integer:7"


def test_json_and_array_arguments_pass_through(anon: Client, sql_function: Callable[[str, str], None]) -> None:
    sql_function("test_shape(doc jsonb, tags text[])",
                 "returns jsonb language sql as $$ select jsonb_build_object('doc', doc, 'n', cardinality(tags)) $$")
    doc = {"a": [1, 2, {"b": None}], "c": "d"}
    assert anon.rpc("test_shape", {"doc": doc, "tags": ["x", "y"]}).execute().data == {"doc": doc, "n": 2}


def test_request_context_is_visible_to_the_function(
    make_user: Callable[..., User], client_for: Callable[[str], Client], sql_function: Callable[[str, str], None]
) -> None:
    sql_function("test_context()", "returns jsonb language sql as $$ select jsonb_build_object("
                 "'headers', current_setting('request.headers', true)::jsonb,"
                 " 'method', current_setting('request.method', true),"
                 " 'path', current_setting('request.path', true),"
                 " 'claims', current_setting('request.jwt.claims', true)::jsonb) $$")
    user = make_user()
    client = client_for(user.token)
    client.postgrest.session.headers["X-Shop-Device"] = "till-7"
    out = as_object(client.rpc("test_context", {}).execute().data)
    assert out["method"] == "POST"
    assert out["path"] == "/rest/v1/rpc/test_context"
    assert out["headers"]["x-shop-device"] == "till-7"
    assert out["headers"]["authorization"] == f"Bearer {user.token}"
    assert out["claims"]["sub"] == str(user.id)
    assert out["claims"]["role"] == "authenticated"


def test_fifty_concurrent_calls_are_all_answered_correctly(
    settings: StackSettings, sql_function: Callable[[str, str], None]
) -> None:
    # pg_sleep keeps each call in the database long enough for the calls to overlap.
    sql_function("test_echo(n integer)", "returns integer language sql as $$ select n from pg_sleep(0.05) $$")

    def call(n: int) -> tuple[int, str]:
        resp = httpx.post(f"{settings.api_url}/rest/v1/rpc/test_echo", json={"n": n},
                          headers={"apikey": settings.anon_key}, timeout=30)
        return resp.status_code, resp.text

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(call, range(50)))
    assert results == [(200, json.dumps(n)) for n in range(50)]
