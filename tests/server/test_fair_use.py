"""Issue 12 finding 6 (noisy neighbours): one push per device at a time, failed and timed-out calls
count toward the limits, pull / verify / registration are metered."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from postgrest.exceptions import APIError
from sync_helpers import as_user, claims_of, config_value, event, push, register, rpc, sync_push, user_client

from shopsync_stack.settings import StackSettings


@pytest.fixture
def conn(settings: StackSettings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.db_url) as c:
        yield c
        c.rollback()


def test_a_second_concurrent_push_of_a_device_is_refused_at_once(settings, pg, conn):
    staff_a = user_client(settings, "staff@shop-a.test")
    dev, other = register(staff_a), register(staff_a)
    as_user(conn, claims_of(settings, "staff@shop-a.test"))
    sync_push(conn, dev, [])  # a push of dev, still running (its transaction is open)
    started = time.monotonic()
    with pytest.raises(APIError) as exc:
        push(staff_a, dev, [event("customers", "insert", str(uuid.uuid4()), {"name": "x"})])
    assert (exc.value.code, exc.value.details) == ("PT429", "push_in_progress")
    assert time.monotonic() - started < 2  # answered, not queued behind the first push
    # Another device of the same user pushes meanwhile.
    assert push(staff_a, other, [event("customers", "insert", str(uuid.uuid4()), {"name": "y"})])[0]["status"] == "applied"
    conn.rollback()
    assert push(staff_a, dev, []) == []  # and dev again once its push has answered


def test_a_push_that_times_out_still_counts_toward_the_rate_limit(settings, pg, conn):
    staff_a = user_client(settings, "staff@shop-a.test")
    dev, writer = register(staff_a), register(staff_a)
    customer = str(uuid.uuid4())
    push(staff_a, writer, [event("customers", "insert", customer, {"name": "Ada"})])
    claims = claims_of(settings, "staff@shop-a.test")
    # The device's rate window opens at its first push and lasts a minute (not a calendar minute:
    # a run straddling a minute boundary used to start counting again and was never limited).
    with config_value(pg, "push_calls_per_minute", "2"), psycopg.connect(settings.db_url) as holder:
        holder.execute("select 1 from public.customers where id = %s for update", (customer,))  # stays locked
        for _ in range(2):
            as_user(conn, claims)
            conn.execute("set local statement_timeout = '300ms'")
            answer = sync_push(conn, dev, [event("customers", "update", customer, {"name": "slow"}, base_version=1)])
            assert (answer["code"], answer["details"]) == ("57014", "timed_out"), answer
            assert conn.execute("select current_setting('response.status', true)").fetchone()[0] == "503"
            conn.commit()  # the call answered (503): its count is committed
        holder.rollback()
        with pytest.raises(APIError) as exc:
            push(staff_a, dev, [])
        assert (exc.value.code, exc.value.details) == ("PT429", "rate_limited")
    assert pg.execute("select name from public.customers where id = %s", (customer,)).fetchone()[0] == "Ada"


def test_a_timed_out_call_answers_503_through_the_gateway(settings, sql_function):
    sql_function("h3_failed_call()", "returns jsonb language sql volatile as "
                 "$$ select shopsync.call_failed('57014', 'canceling statement due to statement timeout') $$")
    client = user_client(settings, "staff@shop-a.test")
    with pytest.raises(APIError) as exc:
        rpc(client, "h3_failed_call")
    assert (exc.value.code, exc.value.details) == ("57014", "timed_out")


@pytest.mark.parametrize("kind", ["pull", "verify", "register"])
def test_pull_verify_and_registration_are_metered(settings, pg, kind):
    client = user_client(settings, "owner@shop-b.test")
    dev = register(client)
    pg.execute("delete from shopsync.call_rate where kind = %s", (kind,))
    calls = {
        "pull": lambda: rpc(client, "sync_pull", p_device_id=dev, p_cursor=0, p_limit=1),
        "verify": lambda: rpc(client, "verify_invoice_chain", p_series="S-metered"),
        "register": lambda: rpc(client, "sync_register_device", p_device_id=dev, p_name="till"),
    }
    # A user's pull budget is the limit per active device of the user (tills sharing a login).
    devices = pg.execute("select count(*) from public.devices as d join auth.users as u on u.id = d.user_id"
                         " where u.email = 'owner@shop-b.test' and d.revoked_at is null").fetchone()[0]
    allowed = 2 * max(1, devices) if kind == "pull" else 2
    with config_value(pg, f"{kind}_calls_per_minute", "2"):
        for _ in range(allowed):
            calls[kind]()
        with pytest.raises(APIError) as exc:
            calls[kind]()
        assert (exc.value.code, exc.value.details) == ("PT429", "rate_limited")
    pg.execute("delete from shopsync.call_rate where kind = %s", (kind,))
    assert json.dumps(calls[kind]())
