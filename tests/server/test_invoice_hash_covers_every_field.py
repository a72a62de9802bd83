"""Issue 12 finding 10: fields of an invoice outside its hash (device id, extra keys in lines) could
change unnoticed, and verify_invoice_chain answered for series the caller cannot see."""

from __future__ import annotations

import uuid

import pytest
from postgrest.exceptions import APIError
from sync_helpers import SHOP_A, claims_of, push, register, rpc, user_client

from shopsync import invoice as inv
from shopsync_stack.tokens import encode

from .test_invoices_inventory import as_event, chain, make_invoice


def test_a_changed_device_id_breaks_the_hash_on_both_sides(settings, pg):
    c = user_client(settings, "staff@shop-a.test")
    dev = register(c)
    series = f"D{uuid.uuid4().hex[:6]}"
    rows = chain(series, 2, dev)
    assert {r["status"] for r in push(c, dev, [as_event(r) for r in rows])} == {"applied"}
    assert inv.verify_chain(rows).ok
    with pg.transaction():
        pg.execute("set local session_replication_role = replica")
        pg.execute("update public.invoices set device_id = %s where id = %s", (str(uuid.uuid4()), rows[1]["id"]))
    check = rpc(c, "verify_invoice_chain", p_series=series)
    assert (check["ok"], check["number"], check["reason"]) == (False, 2, "hash_mismatch")
    assert inv.verify_chain([rows[0], {**rows[1], "device_id": str(uuid.uuid4())}]).reason == "hash_mismatch"


def test_a_line_with_a_key_outside_the_hash_is_refused(settings):
    c = user_client(settings, "staff@shop-a.test")
    dev = register(c)
    row = make_invoice(f"L{uuid.uuid4().hex[:6]}", 1, inv.GENESIS_HASH, dev, lines=[
        {"description": "Mug", "quantity": "1", "unit_price": "10.00", "tax_rate": "19.00", "discount": "9.00"}])
    res = push(c, dev, [as_event(row)])[0]
    assert (res["status"], res["reason"]) == ("rejected", "invalid_lines")


def test_a_new_invoice_hashed_in_form_v1_is_refused(settings):
    c = user_client(settings, "staff@shop-a.test")
    dev = register(c)
    row = make_invoice(f"W{uuid.uuid4().hex[:6]}", 1, inv.GENESIS_HASH, dev, hash_version=1)
    row["hash"] = inv.invoice_hash(row)
    assert row["hash"] != inv.invoice_hash({**row, "hash_version": 2})
    res = push(c, dev, [as_event(row)])[0]
    assert (res["status"], res["reason"]) == ("rejected", "hash_mismatch")


def test_verify_answers_only_an_active_member_of_the_shop(settings):
    claims = claims_of(settings, "staff@shop-b.test")
    claims["app_metadata"] = {**claims.get("app_metadata", {}), "shop_id": SHOP_A}  # not their shop
    intruder = user_client(settings, "staff@shop-b.test")
    intruder.postgrest.auth(encode(claims, settings.jwt_secret))
    with pytest.raises(APIError) as exc:
        rpc(intruder, "verify_invoice_chain", p_series="T0")
    assert (exc.value.code, exc.value.details) == ("PT403", "not_a_member")
