"""Issue 12 finding 5: a push names another shop's row ids. No lock on that row, no existence oracle.

Two connections: shop B's push stays open (its transaction holds whatever it took) while shop A's
writers, with a short lock_timeout, write the same row and a sale referencing it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sync_helpers import as_user, claims_of, event, push, register, sync_push, user_client

from shopsync_stack.settings import StackSettings


@pytest.fixture
def two_connections(settings: StackSettings) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    with psycopg.connect(settings.db_url) as b, psycopg.connect(settings.db_url) as a:
        yield b, a
        b.rollback()
        a.rollback()


def test_a_push_naming_another_shops_row_neither_blocks_its_writers_nor_reveals_it(settings, pg, two_connections):
    staff_a, staff_b = user_client(settings, "staff@shop-a.test"), user_client(settings, "staff@shop-b.test")
    dev_a, dev_b = register(staff_a), register(staff_b)
    customer = str(uuid.uuid4())
    assert push(staff_a, dev_a, [event("customers", "insert", customer, {"name": "Ada"})])[0]["status"] == "applied"
    free = str(uuid.uuid4())

    conn_b, conn_a = two_connections
    as_user(conn_b, claims_of(settings, "staff@shop-b.test"))
    answer = sync_push(conn_b, dev_b, [
        event("customers", "update", customer, {"name": "mine"}, base_version=1),
        event("customers", "update", free, {"name": "mine"}, base_version=1),
        event("customers", "delete", customer, base_version=1),
        event("customers", "delete", free, base_version=1),
        event("customers", "insert", customer, {"name": "copy"}),
    ])["results"]
    # B's transaction stays open: any lock it took on A's row is still held.

    # A's writers are not blocked: an update of the row and a sale referencing it (foreign-key check).
    conn_a.execute("set lock_timeout = '500ms'")
    as_user(conn_a, claims_of(settings, "staff@shop-a.test"))
    order = str(uuid.uuid4())
    results = sync_push(conn_a, dev_a, [
        event("customers", "update", customer, {"name": "Ada L."}, base_version=1),
        event("orders", "insert", order, {"customer_id": customer, "total": 5}),
    ])["results"]
    assert [r["status"] for r in results] == ["applied", "applied"], results
    conn_a.execute("update public.customers set name = 'Ada Lovelace' where id = %s", (customer,))
    conn_a.commit()

    def same(r: dict[str, Any], row_id: str) -> dict[str, Any]:
        return {k: (v.replace(row_id, "ID") if isinstance(v, str) else v) for k, v in r.items() if k != "event_id"}

    assert same(answer[0], customer) == same(answer[1], free)  # update: exactly like a free id
    assert same(answer[2], customer) == same(answer[3], free)  # delete: exactly like a free id
    assert (answer[4]["status"], answer[4]["reason"], answer[4]["server_row"]) == ("rejected", "id_unavailable", None)
    conn_b.rollback()


def test_an_insert_racing_another_shops_uncommitted_insert_of_the_same_id_answers_as_for_a_committed_one(
        settings, two_connections):
    staff_a, staff_b = user_client(settings, "staff@shop-a.test"), user_client(settings, "staff@shop-b.test")
    dev_a, dev_b = register(staff_a), register(staff_b)
    row = str(uuid.uuid4())
    conn_b, conn_a = two_connections
    as_user(conn_a, claims_of(settings, "staff@shop-a.test"))
    assert sync_push(conn_a, dev_a, [event("customers", "insert", row, {"name": "A's"})])["results"][0]["status"] \
        == "applied"  # A's transaction stays open: the row is not committed yet
    pid_b = conn_b.info.backend_pid
    answer: dict[str, Any] = {}

    def push_b() -> None:
        as_user(conn_b, claims_of(settings, "staff@shop-b.test"))
        answer["r"] = sync_push(conn_b, dev_b, [event("customers", "insert", row, {"name": "B's"})])["results"][0]

    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(push_b)
        with psycopg.connect(settings.db_url, autocommit=True) as watch:  # until B waits on A's insert
            while not done.done() and not watch.execute(
                    "select pg_blocking_pids(%s) <> '{}'", (pid_b,)).fetchone()[0]:
                watch.execute("select pg_sleep(0.01)")
        conn_a.commit()
        done.result(timeout=30)
    # As for an id another shop committed earlier: rejected / id_unavailable, no server row.
    assert (answer["r"]["status"], answer["r"]["reason"], answer["r"]["server_row"]) == \
        ("rejected", "id_unavailable", None), answer["r"]
