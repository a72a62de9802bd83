"""Fiscal invoices and stock through the protocol: chains, tamper detection, derived levels."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgrest.exceptions import APIError
from supabase import create_client
from sync_helpers import SHOP_A, event, pull_all, push, register, rpc, user_client

from shopsync import invoice as inv

VECTORS = Path(__file__).resolve().parents[2] / "supabase" / "tests" / "fixtures" / "invoice_vectors.json"


def make_invoice(series: str, number: int, prev_hash: str, device_id: str, **overrides: Any) -> dict[str, Any]:
    lines = overrides.pop("lines", [
        {"description": "Coffee beans 250 g", "quantity": "2", "unit_price": "8.90", "tax_rate": "7.00"},
        {"description": "Mug “Blue”", "quantity": "1", "unit_price": "12.00", "tax_rate": "19.00"},
    ])
    t = inv.totals(lines)
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()), "shop_id": SHOP_A, "device_id": device_id, "series": series, "number": number,
        "issued_at": "2026-11-22T09:30:00.250000Z", "lines": lines, "subtotal": str(t.subtotal),
        "tax": str(t.tax), "total": str(t.total), "currency": "EUR", "kind": "invoice", "prev_hash": prev_hash,
    }
    row.update(overrides)
    row["hash"] = overrides.get("hash") or inv.invoice_hash(row)
    return row


def as_event(row: dict[str, Any]) -> dict[str, Any]:
    return event("invoices", "insert", row["id"], {k: v for k, v in row.items() if k not in ("id", "shop_id")})


def chain(series: str, n: int, device_id: str) -> list[dict[str, Any]]:
    rows, prev = [], inv.GENESIS_HASH
    for number in range(1, n + 1):
        rows.append(make_invoice(series, number, prev, device_id))
        prev = rows[-1]["hash"]
    return rows


def test_python_and_postgres_hash_the_test_vectors_identically(pg):
    vectors = json.loads(VECTORS.read_text())
    assert len(vectors) >= 3
    for v in vectors:
        assert inv.canonical(v["invoice"]) == v["canonical"], v["name"]
        assert inv.invoice_hash(v["invoice"]) == v["hash"], v["name"]
        i = v["invoice"]
        if inv.hash_version(i) == 2:  # canonical form v2: the row as jsonb
            db_hash = pg.execute("select shopsync.invoice_hash(shopsync.invoice_canonical_v2(%s::jsonb))",
                                 (json.dumps(i),)).fetchone()[0]
            assert db_hash == v["hash"], v["name"]
            continue
        db_hash = pg.execute(
            "select shopsync.invoice_hash(shopsync.invoice_canonical(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s))",
            (i["shop_id"], i["series"], i["number"], i["issued_at"], i["kind"], i.get("refers_to"), i.get("customer_id"),
             i["currency"], i["subtotal"], i["tax"], i["total"], json.dumps(i["lines"]), i["prev_hash"])).fetchone()[0]
        assert db_hash == v["hash"], v["name"]


def test_two_devices_issue_chains_offline_and_both_verify(settings):
    c1, c2 = user_client(settings, "staff@shop-a.test"), user_client(settings, "owner@shop-a.test")
    d1, d2 = register(c1), register(c2)
    s1, s2 = f"S{uuid.uuid4().hex[:6]}", f"S{uuid.uuid4().hex[:6]}"
    r1 = push(c1, d1, [as_event(r) for r in chain(s1, 3, d1)])
    r2 = push(c2, d2, [as_event(r) for r in chain(s2, 2, d2)])
    assert {r["status"] for r in r1 + r2} == {"applied"}
    assert rpc(c2, "verify_invoice_chain", p_series=s1)["ok"] is True
    assert rpc(c1, "verify_invoice_chain", p_series=s2)["checked"] == 2


@pytest.mark.parametrize("tamper, reason", [
    ("total", "totals_mismatch"),
    ("prev_hash", "chain_broken"),
    ("number", "number_gap"),
    ("hash", "hash_mismatch"),
])
def test_a_tampered_invoice_is_rejected_with_its_reason(settings, pg, tamper, reason):
    c = user_client(settings, "staff@shop-a.test")
    dev = register(c)
    series = f"T{uuid.uuid4().hex[:6]}"
    good = chain(series, 1, dev)
    first = push(c, dev, [as_event(good[0])])[0]
    assert first["status"] == "applied"
    bad = make_invoice(series, 2, good[0]["hash"], dev)
    if tamper == "total":
        bad["total"] = str(Decimal(bad["total"]) + 1)
    elif tamper == "prev_hash":
        bad["prev_hash"] = "f" * 64
    elif tamper == "number":
        bad["number"] = 3
    if tamper != "hash":
        bad["hash"] = inv.invoice_hash(bad)  # a consistent hash over the tampered content
    else:
        bad["hash"] = "e" * 64
    res = push(c, dev, [as_event(bad)])[0]
    assert (res["status"], res["reason"]) == ("rejected", reason)
    assert pg.execute("select count(*) from public.invoices where id = %s", (bad["id"],)).fetchone()[0] == 0
    assert rpc(c, "verify_invoice_chain", p_series=series)["ok"] is True


def test_verify_invoice_chain_names_the_broken_link(settings, pg):
    c = user_client(settings, "staff@shop-a.test")
    dev = register(c)
    series = f"V{uuid.uuid4().hex[:6]}"
    rows = chain(series, 3, dev)
    push(c, dev, [as_event(r) for r in rows])
    # Someone with table-owner powers edits a row behind the triggers' back.
    with pg.transaction():
        pg.execute("set local session_replication_role = replica")
        pg.execute("update public.invoices set total = total + 1 where id = %s", (rows[1]["id"],))
    check = rpc(c, "verify_invoice_chain", p_series=series)
    assert (check["ok"], check["number"], check["invoice_id"], check["reason"]) == (False, 2, rows[1]["id"], "hash_mismatch")


def test_invoices_cannot_be_changed_by_any_role(settings, pg):
    c = user_client(settings, "owner@shop-a.test")
    dev = register(c)
    row = chain(f"I{uuid.uuid4().hex[:6]}", 1, dev)[0]
    push(c, dev, [as_event(row)])
    upd = push(c, dev, [event("invoices", "update", row["id"], {"total": "0.00"}, base_version=1)])[0]
    assert (upd["status"], upd["reason"]) == ("rejected", "append_only")
    for stmt in ("update public.invoices set currency = 'USD' where id = %s", "delete from public.invoices where id = %s"):
        with pytest.raises(psycopg.Error) as exc:
            pg.execute(stmt, (row["id"],))
        assert exc.value.sqlstate in ("SS107", "42501")
    with pytest.raises(psycopg.Error):
        pg.execute("truncate public.invoices cascade")


def test_two_tills_selling_offline_both_count(settings, pg):
    c1, c2 = user_client(settings, "staff@shop-a.test"), user_client(settings, "owner@shop-a.test")
    d1, d2 = register(c1), register(c2)
    product = pg.execute("select id from public.products where shop_id = %s and sku = 'MUG-01'", (SHOP_A,)).fetchone()[0]
    before = pg.execute("select coalesce((select on_hand from public.inventory_levels where id = %s), 0)", (product,)).fetchone()[0]
    move = lambda delta, reason: event("stock_movements", "insert", str(uuid.uuid4()),  # noqa: E731
                                       {"product_id": str(product), "delta": delta, "reason": reason})
    assert push(c1, d1, [move("10", "restock"), move("-2", "sale")])[0]["status"] == "applied"
    assert push(c2, d2, [move("-3", "sale"), move("-1", "sale")])[1]["status"] == "applied"
    level = pg.execute("select on_hand from public.inventory_levels where id = %s", (product,)).fetchone()[0]
    assert level == before + 4
    changes, _ = pull_all(c2, d2)
    pulled = [c for c in changes if c["table"] == "inventory_levels" and c["row_id"] == str(product)][-1]
    assert Decimal(str(pulled["row"]["on_hand"])) == level
    # Levels are the server's: a device cannot push them.
    res = push(c1, d1, [event("inventory_levels", "update", str(product), {"on_hand": 999}, base_version=1)])[0]
    assert (res["status"], res["reason"]) == ("rejected", "read_only_table")
    wrong_sign = push(c1, d1, [move("5", "sale")])[0]
    assert (wrong_sign["status"], wrong_sign["reason"]) == ("rejected", "check_violation")


def test_platform_overview_is_for_the_service_role_only(settings):
    owner = user_client(settings, "owner@shop-a.test")
    dash = rpc(owner, "shop_dashboard")
    assert dash["shop_id"] == SHOP_A and dash["licence"]["expired"] is False
    with pytest.raises(APIError) as exc:
        rpc(owner, "platform_overview")
    assert exc.value.code == "42501"
    service = create_client(settings.api_url, settings.service_role_key)
    overview = service.rpc("platform_overview", {}).execute().data
    assert {s["name"] for s in overview} >= {"Shop A", "Shop B"}
