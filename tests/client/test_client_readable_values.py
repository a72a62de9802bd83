"""Readable values (issue 12 items 2 and 8), on the client: the store refuses at write time what no
client could read back; an event that could still hold such a value (queued by an older client) is
rejected locally instead of wedging the outbox; a pulled row the client cannot read is reported,
never raised."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest_client import SHOP_A

from shopsync import InvalidValueError, LocalStore, UnreadableRow
from shopsync.pull import apply_changes

POISON: list[tuple[str, dict[str, Any]]] = [
    ("customers", {"name": "a\x00b"}),
    ("customers", {"name": "lone \ud800 surrogate"}),
    ("customers", {"name": "ok", "notes": "trailing \udfff"}),
    ("shop_settings", {"key": "k", "value": {"a": "x\x00"}}),
    ("shop_settings", {"key": "k", "value": {"bad\x00key": 1}}),
    ("shop_settings", {"key": "k", "value": [float("nan")]}),
    ("shop_settings", {"key": "k", "value": {"x": float("inf")}}),
    ("products", {"sku": "P", "name": "p", "price": "12345678901.00"}),  # numeric(12,2): 11 digits before the point
    ("products", {"sku": "P", "name": "p", "price": "1E+30"}),
    ("invoices", {"series": "S", "number": 2**63}),
    ("invoices", {"series": "S", "number": 1, "issued_at": "0001-01-01T00:30:00+01:00"}),
    ("invoices", {"series": "S", "number": 1, "issued_at": "9999-12-31T23:30:00-01:00"}),
    ("invoices", {"series": "S", "number": 1, "issued_at": "0001-01-01T00:00:00 BC"}),
]


@pytest.mark.parametrize(("table", "values"), POISON, ids=[repr(v)[:60] for _, v in POISON])
def test_the_store_refuses_values_no_client_can_read_back(fresh_store: LocalStore, table: str,
                                                          values: dict[str, Any]) -> None:
    spec = fresh_store.schema.table(table)
    with pytest.raises(InvalidValueError):
        spec.stored_from_app(values)
    if table in ("customers", "shop_settings", "products"):
        with pytest.raises(InvalidValueError):
            fresh_store.insert(table, values)
        assert fresh_store.outbox.all() == []


def test_the_store_keeps_values_at_the_edges(fresh_store: LocalStore) -> None:
    spec = fresh_store.schema.table("invoices")
    stored = spec.stored_from_app({"issued_at": "0001-01-01T00:00:00Z", "number": 2**63 - 1})
    assert stored == {"issued_at": "0001-01-01T00:00:00.000000Z", "number": 2**63 - 1}
    assert spec.stored_from_app({"issued_at": "9999-12-31T23:59:59.999999+00:00"})["issued_at"] == \
        "9999-12-31T23:59:59.999999Z"
    row = fresh_store.insert("products", {"sku": "E", "name": "Edge \u00e9 \U0001f600", "price": "9999999999.99"})
    assert row["price"] == fresh_store.get("products", row["id"])["price"]


def test_a_pulled_row_the_client_cannot_read_is_reported_and_the_rest_applies(fresh_store: LocalStore) -> None:
    good = "c3000000-0000-4000-8000-000000000001"
    bad = "c3000000-0000-4000-8000-000000000002"
    base = {"shop_id": SHOP_A, "version": 1, "created_at": "2026-01-01T00:00:00.000000+00:00",
            "updated_at": "2026-01-01T00:00:00.000000+00:00", "deleted_at": None, "last_device_id": None}
    changes = [
        {"seq": 7, "table": "customers", "op": "insert", "row_id": bad, "version": 1,
         "row": {**base, "id": bad, "name": "BC", "client_changed_at": "0001-12-31T23:00:00+00:00 BC"}},
        {"seq": 8, "table": "customers", "op": "insert", "row_id": good, "version": 1,
         "row": {**base, "id": good, "name": "Fine", "client_changed_at": "2026-01-01T00:00:00.000000+00:00"}},
    ]
    unreadable: list[UnreadableRow] = []
    with fresh_store.transaction():
        apply_changes(fresh_store, changes, unreadable)
    assert [(u.table, u.row_id, u.seq) for u in unreadable] == [("customers", bad, 7)]
    assert fresh_store.get("customers", good) is not None
    assert fresh_store.get("customers", bad) is None


# -- Against the stack ----------------------------------------------------------------------------------
def test_a_bc_timestamp_stored_on_the_server_does_not_make_sync_raise(make_device: Any, sql: Any) -> None:
    a1 = make_device("a1")
    cust = a1.store.insert("customers", {"name": "Soon BC"})
    other = a1.store.insert("customers", {"name": "Stays fine"})
    a1.client.sync().raise_for_errors()
    # As postgres, as if a push had stored it (before the server refused such values).
    device = sql("select id::text from public.devices where shop_id = %s limit 1", (SHOP_A,))[0][0]
    sql("select set_config('shopsync.device_id', %s, false)", (device,))
    sql("update public.customers set client_changed_at = '0001-01-01 00:00:00+00'::timestamptz - interval '1 day'"
        " where id = %s", (cust["id"],))
    sql("select set_config('shopsync.device_id', '', false)")
    sql("update public.customers set notes = 'after' where id = %s", (other["id"],))
    try:
        a2 = make_device("a2", sync=False)  # a new device of the shop, and the old one
        for dev in (a2, a1):
            r = dev.client.sync()
            assert r.ok, r.errors
            assert [(u.table, u.row_id) for u in r.unreadable] == [("customers", cust["id"])]
            assert dev.store.get("customers", other["id"])["notes"] == "after"
    finally:
        # The shop's later tests compare every row: the row is made readable again (a new version).
        sql("update public.customers set client_changed_at = now() where id = %s", (cust["id"],))


def test_an_outbox_event_holding_nul_is_rejected_locally_and_the_rest_pushes(make_device: Any, sql: Any) -> None:
    a1 = make_device("a1")
    poisoned = a1.store.insert("customers", {"name": "Will be poisoned"})
    good = a1.store.insert("customers", {"name": "Good"})
    # As an older client could have queued it: straight into the outbox, past the store's checks.
    with a1.store.transaction() as conn:
        conn.execute("update _outbox set data = ? where row_id = ?",
                     (json.dumps({"name": "a\u0000b"}), poisoned["id"]))
    r = a1.client.sync()
    assert r.ok, r.errors
    assert (r.applied, r.rejected) == (1, 1)
    assert [(x.row_id, x.reason) for x in r.rejections] == [(poisoned["id"], "invalid_value")]
    assert a1.client.status().pending_uploads == 0
    assert a1.store.get("customers", poisoned["id"])["sync_state"] == "failed"
    assert sql("select count(*) from public.customers where id = %s", (good["id"],)) == [(1,)]
