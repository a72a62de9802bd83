"""Invoices and stock from the device side: offline issuing, chains, tamper detection, levels."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest_client import SHOP_A

from shopsync import SchemaError, TransportError
from shopsync import invoice as inv

VECTORS = Path(__file__).resolve().parents[2] / "supabase" / "tests" / "fixtures" / "invoice_vectors.json"
LINES = [{"description": "Mug", "quantity": 1, "unit_price": "12.00", "tax_rate": "19.00"}]


def product_id(sql: Any, sku: str = "MUG-01") -> str:
    return str(sql("select id from public.products where shop_id = %s and sku = %s", (SHOP_A, sku))[0][0])


def test_the_python_side_hashes_the_shared_vectors() -> None:
    """The same file is checked by pgTAP (invoice_hashes_match_the_shared_test_vectors)."""
    for v in json.loads(VECTORS.read_text()):
        assert inv.canonical(v["invoice"]) == v["canonical"], v["name"]
        assert inv.invoice_hash(v["invoice"]) == v["hash"], v["name"]


@pytest.mark.parametrize("first", ["a1", "a2"])
def test_two_offline_tills_issue_invoices_and_sell_the_same_product(make_device: Any, sql: Any, first: str) -> None:
    a1, a2 = make_device("a1"), make_device("a2", "owner@shop-a.test")
    mug = product_id(sql)
    a1.client.sync()
    before = a1.store.on_hand(mug)
    # Offline: each till issues invoices in its own series and sells two mugs.
    for till in (a1, a2):
        with till.store.transaction():
            for _ in range(2):
                issued = till.store.issue_invoice(LINES)
                till.store.record_movement(mug, -1, "sale", ref_id=issued["id"])
        assert till.store.on_hand(mug) == before - 2  # its own unsynced sales count at once
        assert till.store.verify_invoice_chain().ok
    order = (a1, a2) if first == "a1" else (a2, a1)
    for till in order:
        till.client.sync().raise_for_errors()
    for till in order:
        till.client.sync().raise_for_errors()
    level = Decimal(str(sql("select on_hand from public.inventory_levels where id = %s", (mug,))[0][0]))
    assert level == before - 4
    for till in (a1, a2):
        assert till.store.on_hand(mug) == level
        for series in (a1.store.invoice_series, a2.store.invoice_series):
            assert till.store.verify_invoice_chain(series).ok
            assert till.store.count("invoices") >= 4
    for series in (a1.store.invoice_series, a2.store.invoice_series):
        check = a1.client.transport.call("verify_invoice_chain", {"p_series": series})
        assert check["ok"] is True and check["checked"] == 2


def test_local_invoices_are_immutable(make_device: Any) -> None:
    a1 = make_device("a1")
    issued = a1.store.issue_invoice(LINES)
    with pytest.raises(SchemaError):
        a1.store.update("invoices", issued["id"], {"total": "0.00"})
    with pytest.raises(SchemaError):
        a1.store.delete("invoices", issued["id"])


@pytest.mark.parametrize("tamper, reason", [
    ("total", "totals_mismatch"), ("prev_hash", "chain_broken"), ("number", "number_gap")])
def test_a_tampered_local_invoice_is_rejected_and_the_chain_check_names_it(
        make_device: Any, tamper: str, reason: str) -> None:
    a1 = make_device("a1")
    first = a1.store.issue_invoice(LINES)
    second = a1.store.issue_invoice(LINES)
    # Someone edits the device's SQLite file behind the app's back, then re-signs the row.
    conn = a1.store._conn  # noqa: SLF001 - the tampering is the point of the test
    row = dict(zip([d[0] for d in conn.execute("select * from invoices where id = ?", (second["id"],)).description],
                   conn.execute("select * from invoices where id = ?", (second["id"],)).fetchone()))
    row["lines"] = json.loads(row["lines"])
    if tamper == "total":
        row["total"] = str(Decimal(row["total"]) + 1)
    elif tamper == "prev_hash":
        row["prev_hash"] = "f" * 64
    else:
        row["number"] = 3
    row["shop_id"] = SHOP_A
    row["hash"] = inv.invoice_hash(row)
    conn.execute("update invoices set total = ?, prev_hash = ?, number = ?, hash = ? where id = ?",
                 (row["total"], row["prev_hash"], row["number"], row["hash"], second["id"]))
    conn.execute("update _outbox set data = json_set(data, '$.total', ?, '$.prev_hash', ?, '$.number', ?, '$.hash', ?)"
                 " where row_id = ?", (row["total"], row["prev_hash"], row["number"], row["hash"], second["id"]))
    local = a1.store.verify_invoice_chain()
    assert (local.ok, local.reason) == (False, reason)
    result = a1.client.sync()
    assert [(r.reason) for r in result.rejections] == [reason]
    assert a1.store.get("invoices", first["id"])["sync_state"] == "synced"
    assert a1.store.get("invoices", second["id"])["sync_state"] == "failed"
    server = a1.client.transport.call("verify_invoice_chain", {"p_series": a1.store.invoice_series})
    assert server["ok"] is True and server["checked"] == 1  # the server kept only the valid link


def test_an_expired_licence_blocks_push_not_pull_and_loses_nothing(make_device: Any, sql: Any) -> None:
    a1, a2 = make_device("a1"), make_device("a2", "owner@shop-a.test")
    mug = product_id(sql)
    seen = a2.store.insert("customers", {"name": "Made before the expiry"})
    a2.client.sync().raise_for_errors()
    sql("update public.licenses set valid_until = now() - interval '1 day' where shop_id = %s", (SHOP_A,))
    try:
        a1.store.issue_invoice(LINES)
        a1.store.record_movement(mug, -1, "sale")
        result = a1.client.sync()
        assert any(getattr(e, "reason", None) == "licence_expired" for e in result.errors), result.errors
        assert a1.store.pending_counts() == {"invoices": 1, "stock_movements": 1}
        status = a1.client.status()
        assert (status.licence_state, status.pending_uploads) == ("licence_expired", 2)
        # Pulls continue: a change another device made before the expiry still arrives.
        assert any(c == ("customers", seen["id"]) for c in pulled_rows(a1))
    finally:
        sql("update public.licenses set valid_until = now() + interval '1 year' where shop_id = %s", (SHOP_A,))
    a1.client.sync().raise_for_errors()
    assert a1.store.pending_counts() == {}
    assert a1.store.verify_invoice_chain().ok
    assert a1.client.status().licence_state == "ok"


def pulled_rows(device: Any) -> set[tuple[str, str]]:
    return {("customers", r["id"]) for r in device.store.query("customers") if r["sync_state"] == "synced"}


class LoseAnswers:
    """A transport that lets ``sync_push`` reach the server and then loses its answer (armed)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        answer = self.inner.call(fn, params)
        if fn == "sync_push" and self.armed:
            self.armed = False
            raise TransportError("the answer was lost", reason="network")
        return answer


def test_a_till_counts_its_own_sale_exactly_once_between_the_push_and_the_pull(make_device: Any, sql: Any) -> None:
    """Read-your-writes for a derived value: after the push is acknowledged and before the new
    level is pulled, the sale still counts once; after the pull, the pulled level counts it."""
    till = make_device("a1")
    mug = product_id(sql)
    before = till.store.on_hand(mug)
    till.store.record_movement(mug, -2, "sale")
    assert till.store.on_hand(mug) == before - 2
    till.client.push().raise_for_errors()  # acknowledged: the movement is synced, the level not pulled
    assert till.store.on_hand(mug) == before - 2
    till.client.pull().raise_for_errors()
    level = Decimal(str(sql("select on_hand from public.inventory_levels where id = %s", (mug,))[0][0]))
    assert till.store.on_hand(mug) == level == before - 2


def test_a_sale_whose_push_answer_was_lost_is_not_counted_twice_once_the_level_is_pulled(
        make_device: Any, sql: Any) -> None:
    """The push applied on the server but its answer never came: the sale is still queued when the
    pull brings the level that includes it; it counts once, before and after the retried push."""
    wrapped: list[LoseAnswers] = []

    def wrap(inner: Any) -> LoseAnswers:
        wrapped.append(LoseAnswers(inner))
        return wrapped[0]

    till = make_device("a1", transport_wrapper=wrap)
    mug = product_id(sql)
    before = till.store.on_hand(mug)
    till.store.record_movement(mug, -3, "sale")
    wrapped[0].armed = True
    assert not till.client.push().ok  # applied on the server, answer lost: still queued here
    assert till.store.pending_counts().get("stock_movements") == 1
    till.client.pull().raise_for_errors()
    assert till.store.on_hand(mug) == before - 3
    till.client.sync().raise_for_errors()  # the retried push is a duplicate: nothing changes
    level = Decimal(str(sql("select on_hand from public.inventory_levels where id = %s", (mug,))[0][0]))
    assert till.store.on_hand(mug) == level == before - 3
