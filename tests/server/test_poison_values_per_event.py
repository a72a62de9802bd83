"""Issue 12 finding 8: a value Postgres cannot store (a NUL character, a lone UTF-16 surrogate, a
number outside numeric's range) sent by a JS/HTTP client used to make Postgres refuse the whole
``sync_push`` body (22P05 -> 400), so one bad event wedged its device's outbox for good. Now the
offending event alone is rejected (``invalid_value``, the field named) and every other event of the
call is processed, results in order. Raw request bodies through the real gateway, as a JS client
sends them, and supabase-py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from sync_helpers import DEVICE_SECRETS, event, register, rpc, user_client

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings


@pytest.fixture(scope="module")
def till(settings: StackSettings) -> str:
    return register(user_client(settings, "staff@shop-a.test"), "poison till")


@pytest.fixture(scope="module")
def http(settings: StackSettings, till: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settings.api_url, timeout=60, headers={
            "apikey": settings.anon_key, "Content-Type": "application/json",
            "Authorization": f"Bearer {mint_user_token(settings, 'staff@shop-a.test')}",
            "x-device-secret": DEVICE_SECRETS[till]}) as client:
        yield client


def _customer(name: Any) -> dict[str, Any]:
    return event("customers", "insert", str(uuid.uuid4()), {"name": name}, client_ts="2026-01-01T00:00:00Z")


def _push_raw(http: httpx.Client, till: str, body: str) -> httpx.Response:
    """The body exactly as a JS client's JSON.stringify writes it (escapes ``\\u0000``, ``\\ud800``)."""
    return http.post("/rest/v1/rpc/sync_push", content=body.encode())


def _names(pg: psycopg.Connection, events: list[dict[str, Any]]) -> list[Any]:
    ids = [e["row_id"] for e in events]
    rows = dict(pg.execute("select id::text, name from public.customers where id = any(%s::uuid[])", (ids,)).fetchall())
    return [rows.get(i) for i in ids]


POISON = {
    "nul": ("\u0000", "NUL"),
    "lone_high_surrogate": ("\ud800", "surrogate"),
    "lone_low_surrogate": ("\udc00", "surrogate"),
}


@pytest.mark.parametrize("kind", list(POISON))
def test_one_poison_event_no_longer_wedges_the_push_the_rest_applies_in_order(pg, http, till, kind):
    char, said = POISON[kind]
    events = [_customer("before"), _customer(f"bad{char}value"), _customer("after 😀")]
    resp = _push_raw(http, till, json.dumps({"p_device_id": till, "p_events": events}))
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in events]
    assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
    bad = results[1]
    assert (bad["reason"], bad["field"], bad["server_row"]) == ("invalid_value", "data.name", None)
    assert said in bad["message"] and "data.name" in bad["message"]
    assert _names(pg, events) == ["before", None, "after 😀"]  # the rejected event left no row
    # The device's next push goes through: nothing is wedged.
    later = [_customer("next")]
    resp = _push_raw(http, till, json.dumps({"p_device_id": till, "p_events": later}))
    assert resp.status_code == 200 and resp.json()["results"][0]["status"] == "applied", resp.text


def test_a_number_jsonb_cannot_hold_rejects_only_its_event(pg, http, till):
    events = [_customer("kept"), _customer("placeholder")]
    body = json.dumps({"p_device_id": till, "p_events": events}).replace('"placeholder"', "1e1000000")
    resp = _push_raw(http, till, body)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [("applied", None), ("rejected", "invalid_value")]
    assert results[1]["field"] == "data.name"


def test_text_that_only_looks_like_an_escape_is_stored_as_written(pg, http, till):
    """The literal six characters \\u0000 (an escaped backslash) are ordinary text, even in a call
    that also carries a real NUL."""
    events = [_customer("literal \\u0000 and \\ud800"), _customer("real\u0000"), _customer("pair \ud83d\ude00")]
    resp = _push_raw(http, till, json.dumps({"p_device_id": till, "p_events": events}))
    assert resp.status_code == 200, resp.text
    assert [r["status"] for r in resp.json()["results"]] == ["applied", "rejected", "applied"]
    assert _names(pg, events) == ["literal \\u0000 and \\ud800", None, "pair 😀"]


def test_poison_in_several_places_of_one_event_and_in_a_column_name(pg, http, till):
    events = [_customer("fine"),
              {**_customer("x"), "data": {"name": "a\u0000", "phone": "\ud800"}},
              {**_customer("y"), "data": {"na\u0000me": "y"}},
              {**_customer("z"), "table": "custo\u0000mers"}]
    resp = _push_raw(http, till, json.dumps({"p_device_id": till, "p_events": events}))
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["applied", "rejected", "rejected", "rejected"]
    assert [r["field"] for r in results[1:]] == ["data.name", "data.na\\u0000me", "table"]
    assert _names(pg, events) == ["fine", None, None, None]


def test_supabase_py_pushes_a_nul_per_event(settings, pg, till):
    """supabase-py (httpx's JSON encoder) writes NUL as \\u0000 too; a lone surrogate cannot even be
    encoded by it (UTF-8), so only NUL reaches the server from Python."""
    client = user_client(settings, "staff@shop-a.test")
    events = [_customer("py ok"), _customer("py\u0000bad")]
    results = rpc(client, "sync_push", p_device_id=till, p_events=events)["results"]
    assert [(r["status"], r["reason"]) for r in results] == [("applied", None), ("rejected", "invalid_value")]


def test_a_push_body_without_poison_and_sql_callers_are_unchanged(pg, http, till, settings):
    events = [_customer("plain")]
    resp = http.post("/rest/v1/rpc/sync_push", json={"p_device_id": till, "p_events": events})
    assert resp.status_code == 200 and resp.json()["results"][0]["status"] == "applied", resp.text
    # Unknown arguments are refused as PostgREST refuses them for a named-argument function.
    resp = http.post("/rest/v1/rpc/sync_push", json={"p_device_id": till, "p_events": [], "p_extra": 1})
    assert (resp.status_code, resp.json()["details"]) == (400, "invalid_payload"), resp.text
    # The SQL form: (uuid, jsonb), positionally.
    sig = pg.execute("select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p"
                     " where p.proname = 'sync_push' and p.pronamespace = 'public'::regnamespace").fetchone()
    assert sig and sig[0] == ["sync_push(json)", "sync_push(uuid,jsonb)"]


def test_a_js_client_the_edge_function_pushes_poison_per_event(settings, pg, http, till):
    """A real JavaScript client: the edge function (Deno, supabase-js) parses the body into JS
    strings holding NUL and a lone surrogate and forwards them with JSON.stringify."""
    events = [_customer("js ok"), _customer("js\u0000nul"), _customer("js \ud83d half"), _customer("js ok 2")]
    resp = http.post(f"{settings.api_url}/functions/v1/sync/push",
                     content=json.dumps({"device_id": till, "events": events}).encode())
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [
        ("applied", None), ("rejected", "invalid_value"), ("rejected", "invalid_value"), ("applied", None)]
    assert _names(pg, events) == ["js ok", None, None, "js ok 2"]
