"""A sync at the tip is one call: the last pull page carries the shop's checksums
(20261203002100_checksums_at_the_tip), and the device verifies against them instead of calling
sync_checksums. Without that, every poke cost each subscribed device two requests (issue 15).
The check itself stays whole: drift found through the page's checksums is repaired, and a device
with rows it cannot vouch for still asks sync_checksums, which leaves them out. Real HTTP, real
SQLite files."""

from __future__ import annotations

import sqlite3
from typing import Any

SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"


class Recording:
    """The real transport, with the RPCs it was asked for written down."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        self.calls.append(fn)
        return self.inner.call(fn, params)


def _new_customer(sql: Any, name: str) -> None:
    sql("insert into public.customers (id, shop_id, name) values (gen_random_uuid(), %s, %s)", (SHOP_A, name))


def test_a_sync_after_a_change_elsewhere_pulls_and_verifies_in_one_call(make_device: Any, sql: Any) -> None:
    dev = make_device("one-call", transport_wrapper=Recording)
    _new_customer(sql, "sold on another till")
    dev.client.transport.calls.clear()
    result = dev.client.sync()
    result.raise_for_errors()
    assert result.pulled == 1 and result.verified is True
    assert dev.client.transport.calls == ["sync_pull_v2"]


def test_drift_seen_through_the_pages_checksums_is_repaired(make_device: Any, sql: Any) -> None:
    dev = make_device("one-call-drift", transport_wrapper=Recording)
    row = dev.store.query("customers", {"sync_state": "synced"}, order_by="id", limit=1)[0]
    conn = sqlite3.connect(str(dev.store.path), timeout=30)
    with conn:
        conn.execute("update customers set name = 'Tampered' where id = ?", (row["id"],))
    conn.close()
    dev.client.transport.calls.clear()
    result = dev.client.sync()
    result.raise_for_errors()
    assert [r.table for r in result.repairs] == ["customers"] and result.verified is True
    assert dev.store.get("customers", row["id"])["name"] == row["name"]
    # found by the page's checksums (no sync_checksums before the repair), checked again after it
    calls = dev.client.transport.calls
    assert calls[0] == "sync_pull_v2" and "sync_table_rows" in calls
    assert "sync_checksums" not in calls[:calls.index("sync_table_rows")]


def test_a_device_with_rows_it_cannot_vouch_for_still_asks_sync_checksums(make_device: Any, sql: Any) -> None:
    dev = make_device("one-call-queued", transport_wrapper=Recording)
    dev.store.insert("customers", {"name": "queued, not pushed"})  # no server copy: named to the server
    _new_customer(sql, "another till's sale")
    dev.client.transport.calls.clear()
    result = dev.client.pull()
    result.raise_for_errors()
    assert result.verified is True
    assert dev.client.transport.calls == ["sync_pull_v2", "sync_checksums"]
