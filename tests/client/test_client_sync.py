"""End to end: devices with real SQLite files syncing through the real stack over HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from conftest_client import SHOP_A, SHOP_B, local_rows, shop_rows

from shopsync import AuthError, ForbiddenError, LicenceError, TransportError

TABLES = ["shop_settings", "customers", "products", "orders", "order_items"]
BUSINESS = {
    "customers": ["customer_code", "name", "email", "phone", "notes"],
    "products": ["sku", "name", "price", "tax_rate", "active"],
    "orders": ["order_code", "customer_id", "status", "total"],
    "order_items": ["order_id", "product_id", "quantity", "unit_price"],
    "shop_settings": ["key", "value"],
}


def snapshot(store: Any) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every row's version, tombstone flag and business values, for comparing devices."""
    out = {}
    for t in TABLES:
        for r in store.query(t, include_deleted=True):
            out[(t, r["id"])] = (r["version"], r["deleted_at"] is not None, *[r[c] for c in BUSINESS[t]])
    return out


def shared_rows(make_device: Any, table: str, *values: dict[str, Any]) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Two devices of shop A that both hold the rows a1 created and synced."""
    a1 = make_device("a1")
    rows = [a1.store.insert(table, v) for v in values]
    a1.client.sync().raise_for_errors()
    return a1, make_device("a2"), rows


def test_three_devices_in_two_shops_converge_whatever_the_sync_order(make_device: Any, sql: Any) -> None:
    a1 = make_device("a1", "staff@shop-a.test")
    a2 = make_device("a2", "owner@shop-a.test")
    b1 = make_device("b1", "staff@shop-b.test")
    coffee_a = a1.store.query("products", {"sku": "COF-250"})[0]
    coffee_b = b1.store.query("products", {"sku": "COF-250"})[0]
    assert coffee_a["id"] != coffee_b["id"]

    # Offline, everyone works.
    cust = a1.store.insert("customers", {"name": "Offline Olga", "email": "olga@x.test"})
    order = a1.store.insert("orders", {"customer_id": cust["id"], "total": "26.70"})
    item = a1.store.insert("order_items", {"order_id": order["id"], "product_id": coffee_a["id"],
                                           "quantity": "3.000", "unit_price": "8.90"})
    a1.store.update("orders", order["id"], {"status": "paid"})
    a2.store.update("products", coffee_a["id"], {"price": Decimal("9.95")})
    walk_in = a2.store.insert("customers", {"name": "Walk-in Will"})
    b_cust = b1.store.insert("customers", {"name": "Bert from B"})
    b1.store.update("products", coffee_b["id"], {"price": "7.15", "active": False})

    for dev in (b1, a2, a1, a2, b1):
        result = dev.client.sync()
        assert result.ok and result.rejected == 0 and result.conflicts == 0, result

    assert snapshot(a1.store) == snapshot(a2.store)
    assert local_rows(a1.store) == shop_rows(sql, SHOP_A, a1.store)
    assert local_rows(b1.store) == shop_rows(sql, SHOP_B, b1.store)
    assert b1.store.get("customers", cust["id"]) is None and a1.store.get("customers", b_cust["id"]) is None
    got = a2.store.get("orders", order["id"])
    assert got["status"] == "paid" and got["total"] == Decimal("26.70") and got["order_code"].startswith("O-")
    assert a2.store.get("order_items", item["id"])["quantity"] == Decimal("3.000")
    assert a1.store.get("products", coffee_a["id"])["price"] == Decimal("9.95")
    assert a1.store.get("customers", walk_in["id"])["sync_state"] == "synced"
    assert b1.store.get("products", coffee_b["id"])["price"] == Decimal("7.15")
    assert a1.store.get("products", coffee_a["id"])["active"] is True
    for dev in (a1, a2, b1):
        status = dev.client.status()
        assert status.pending_uploads == 0 and status.open_conflicts == 0 and status.last_error is None


def test_disjoint_field_edits_merge(make_device: Any) -> None:
    a1, a2, (cust,) = shared_rows(make_device, "customers", {"name": "Merge Me"})
    a1.store.update("customers", cust["id"], {"email": "m@x.test"})
    a2.store.update("customers", cust["id"], {"phone": "555"})
    assert a1.client.sync().applied == 1
    r2 = a2.client.sync()
    assert (r2.merged, r2.conflicts) == (1, 0)
    a1.client.sync()
    for dev in (a1, a2):
        row = dev.store.get("customers", cust["id"])
        assert (row["email"], row["phone"], row["sync_state"], row["version"]) == ("m@x.test", "555", "synced", 3)


def test_customers_last_write_wins_per_column(make_device: Any) -> None:
    a1, a2, (cust,) = shared_rows(make_device, "customers", {"name": "Lww", "email": "old@x.test"})
    # a1 edits first (earlier client_ts), a2 later; a2 syncs first, a1 second.
    a1.store.update("customers", cust["id"], {"name": "Early name", "email": "early@x.test"})
    a2.store.update("customers", cust["id"], {"name": "Late name"})
    assert a2.client.sync().applied == 1
    r1 = a1.client.sync()
    assert r1.conflicts == 1 and r1.applied == 0
    row = a1.store.get("customers", cust["id"])
    # name: a2's later write kept; email: no overlap, a1's applied. The server's row was adopted.
    assert (row["name"], row["email"], row["sync_state"]) == ("Late name", "early@x.test", "synced")
    [logged] = [c for c in a1.client.conflicts(include_resolved=True) if c.row_id == cust["id"]]
    assert (logged.reason, logged.resolution, logged.policy) == ("overridden", "auto:remote", "last_write_wins")
    assert logged.local_values["name"] == "Early name" and logged.server_row["name"] == "Late name"
    assert a1.client.status().open_conflicts == 0
    a2.client.sync()
    assert snapshot(a1.store) == snapshot(a2.store)

    # The later write wins even when it syncs last.
    a2.store.update("customers", cust["id"], {"name": "Earlier again"})
    a1.store.update("customers", cust["id"], {"name": "Latest"})
    a2.client.sync()
    assert a1.client.sync().merged == 1
    a2.client.sync()
    assert a2.store.get("customers", cust["id"])["name"] == "Latest"


@pytest.mark.parametrize("keep", ["local", "remote", {"total": "25.00", "status": "paid"}],
                         ids=["keep-local", "keep-remote", "keep-custom"])
def test_orders_manual_conflict_is_kept_until_resolved(make_device: Any, keep: Any) -> None:
    a1, a2, (order,) = shared_rows(make_device, "orders", {"total": "10.00"})
    a1.store.update("orders", order["id"], {"total": "20.00", "status": "paid"})
    a2.store.update("orders", order["id"], {"total": "30.00"})
    assert a1.client.sync().applied == 1
    r2 = a2.client.sync()
    assert r2.conflicts == 1 and r2.ok
    row = a2.store.get("orders", order["id"])
    # Both versions kept: our value on top of the server's row, the row flagged.
    assert (row["sync_state"], row["total"], row["status"]) == ("conflict", Decimal("30.00"), "paid")
    [conflict] = a2.client.conflicts()
    assert (conflict.reason, conflict.policy, conflict.base_version) == ("concurrent_update", "manual", 1)
    assert conflict.local_values == {"total": Decimal("30.00")}
    assert conflict.server_row["total"] == Decimal("20.00") and conflict.server_row["version"] == 2
    assert a2.client.status().open_conflicts == 1
    a2.client.sync()  # still a conflict: nothing is pushed for it, nothing overwritten
    assert a2.store.get("orders", order["id"])["sync_state"] == "conflict"

    a2.client.resolve(conflict.id, keep=keep)
    assert a2.client.conflicts() == []
    a2.client.sync().raise_for_errors()
    a1.client.sync().raise_for_errors()
    expected = {"local": Decimal("30.00"), "remote": Decimal("20.00")}.get(keep if isinstance(keep, str) else "",
                                                                          Decimal("25.00"))
    for dev in (a1, a2):
        row = dev.store.get("orders", order["id"])
        assert (row["total"], row["status"], row["sync_state"]) == (expected, "paid", "synced")
    assert snapshot(a1.store) == snapshot(a2.store)


def test_a_conflict_resolved_on_one_device_settles_the_other(make_device: Any) -> None:
    """Both sides edited; the device that got the conflict takes the other side's values."""
    a1, a2, (order,) = shared_rows(make_device, "orders", {"total": "1.00"})
    a2.store.update("orders", order["id"], {"total": "2.00"})
    a1.store.update("orders", order["id"], {"total": "3.00"})
    a2.client.sync()
    assert a1.client.sync().conflicts == 1
    [c] = [c for c in a1.client.conflicts() if c.row_id == order["id"]]
    a1.client.resolve(c.id, keep="remote")
    a1.client.sync()
    a2.client.sync()
    assert a1.store.get("orders", order["id"])["total"] == Decimal("2.00")
    assert a1.client.status().pending_uploads == 0
    assert snapshot(a1.store) == snapshot(a2.store)


def test_shop_settings_server_wins_and_only_owners_write(make_device: Any) -> None:
    o1 = make_device("o1", "owner@shop-a.test")
    o2 = make_device("o2", "owner@shop-a.test")
    staff = make_device("s1", "staff@shop-a.test")
    currency = o1.store.query("shop_settings", {"key": "currency"})[0]
    o1.store.update("shop_settings", currency["id"], {"value": "USD"})
    o2.store.update("shop_settings", currency["id"], {"value": "GBP"})
    assert o1.client.sync().applied == 1
    r2 = o2.client.sync()
    assert r2.conflicts == 1
    row = o2.store.get("shop_settings", currency["id"])
    assert (row["value"], row["sync_state"]) == ("USD", "synced")
    [logged] = [c for c in o2.client.conflicts(include_resolved=True) if c.row_id == currency["id"]]
    assert (logged.reason, logged.policy, logged.resolution) == ("concurrent_update", "server_wins", "auto:remote")
    assert logged.local_values == {"value": "GBP"}

    bad = staff.store.insert("shop_settings", {"key": "theme", "value": {"dark": True}})
    r = staff.client.sync()
    assert r.rejected == 1 and r.rejections[0].reason == "role_forbidden"
    failed = staff.store.get("shop_settings", bad["id"])
    assert failed["sync_state"] == "failed" and failed["last_error"].startswith("role_forbidden")
    assert staff.client.status().pending_uploads == 0
    assert staff.store.get("shop_settings", currency["id"])["value"] == "USD"


def test_delete_versus_update(make_device: Any) -> None:
    a1, a2, (gone, kept) = shared_rows(make_device, "customers", {"name": "To delete"}, {"name": "Deleted early"})

    # Delete syncs first, then the update: the update hits a tombstone.
    a1.store.delete("customers", gone["id"])
    a2.store.update("customers", gone["id"], {"phone": "1"})
    a1.client.sync().raise_for_errors()
    r2 = a2.client.sync()
    assert r2.conflicts == 1
    assert a2.store.get("customers", gone["id"]) is None
    [c] = [c for c in a2.client.conflicts(include_resolved=True) if c.row_id == gone["id"]]
    assert c.reason == "row_deleted" and c.local_values == {"phone": "1"}

    # An older delete loses to a newer update of the same row (last write wins).
    a1.store.delete("customers", kept["id"])
    a2.store.update("customers", kept["id"], {"phone": "2"})
    a2.client.sync().raise_for_errors()
    r1 = a1.client.sync()
    assert r1.conflicts == 1
    back = a1.store.get("customers", kept["id"])
    assert back is not None and back["phone"] == "2" and back["sync_state"] == "synced"
    a2.client.sync()
    assert snapshot(a1.store) == snapshot(a2.store)


def test_pulled_rows_do_not_overwrite_pending_local_edits(make_device: Any) -> None:
    a1, a2, (cust,) = shared_rows(make_device, "customers", {"name": "On top"})
    a2.store.update("customers", cust["id"], {"phone": "999", "name": "Theirs"})
    a1.store.update("customers", cust["id"], {"notes": "local note", "name": "Mine"})
    a2.client.sync().raise_for_errors()
    assert a1.client.pull().pulled >= 1
    row = a1.store.get("customers", cust["id"])
    assert (row["notes"], row["name"], row["phone"]) == ("local note", "Mine", "999")
    assert (row["version"], row["sync_state"]) == (2, "pending_update")
    r = a1.client.sync()
    assert r.merged == 1  # a1's edit is later: it wins on name
    a2.client.sync()
    assert snapshot(a1.store) == snapshot(a2.store)
    assert a2.store.get("customers", cust["id"])["name"] == "Mine"


def test_reset_required_keeps_pending_work(make_device: Any, sql: Any) -> None:
    a1 = make_device("a1")
    a2 = make_device("a2", "owner@shop-a.test")
    existing = a1.store.query("customers", {"name": "Ada Lovelace"})[0]
    new = a1.store.insert("customers", {"name": "Pending Pat"})
    a1.store.update("customers", existing["id"], {"notes": "pending note"})
    a2.store.insert("customers", {"name": "Made elsewhere"})
    a2.client.sync().raise_for_errors()
    before = [e.event_id for e in a1.store.outbox.all()]
    sql("update public.licenses set valid_until = now() - interval '1 day' where shop_id = %s", (SHOP_A,))
    sql("update shopsync.shop_cursor set floor_seq = last_seq where shop_id = %s", (SHOP_A,))
    try:
        r = a1.client.sync()  # the push is refused (402), the pull resets
    finally:
        sql("update public.licenses set valid_until = now() + interval '1 year' where shop_id = %s", (SHOP_A,))
    assert isinstance(r.errors[0], LicenceError) and r.errors[0].reason == "licence_expired"
    assert r.resets == 1 and r.pulled > 0
    assert a1.client.status().licence_state == "licence_expired"
    assert [e.event_id for e in a1.store.outbox.all()] == before
    assert a1.store.get("customers", new["id"])["sync_state"] == "pending_create"
    kept = a1.store.get("customers", existing["id"])
    assert (kept["notes"], kept["sync_state"]) == ("pending note", "pending_update")
    assert a1.store.query("customers", {"name": "Made elsewhere"})
    r = a1.client.sync()
    assert r.ok and r.applied == 2
    assert a1.client.status().licence_state == "ok"
    assert local_rows(a1.store) == shop_rows(sql, SHOP_A, a1.store)


class DropFirstPushResponse:
    """A deliberately injected fault: the first sync_push reaches the server and commits, but its
    response is lost on the way back."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dropped = 0

    def __getattr__(self, name: str) -> Any:  # a transparent wrapper: the rest is the inner transport's
        return getattr(self.__dict__["inner"], name)

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        answer = self.inner.call(fn, params)
        if fn == "sync_push" and not self.dropped:
            self.dropped += 1
            raise TransportError("connection reset while reading the response", reason="network")
        return answer


def test_a_push_whose_response_was_lost_is_applied_once(make_device: Any, sql: Any) -> None:
    a1 = make_device("a1", transport_wrapper=DropFirstPushResponse)
    cust = a1.store.insert("customers", {"name": "Once"})
    a1.store.update("customers", cust["id"], {"phone": "1"})
    events = [e.event_id for e in a1.store.outbox.all()]
    r = a1.client.sync()
    assert isinstance(r.errors[0], TransportError) and a1.client.transport.dropped == 1
    assert [e.event_id for e in a1.store.outbox.all()] == events  # left as queued
    assert a1.client.status().last_error is not None
    assert sql("select version from public.customers where id = %s", (cust["id"],)) == [(2,)]  # it did commit
    r = a1.client.sync()
    assert r.ok and (r.pushed, r.duplicates, r.applied) == (2, 2, 0)
    assert sql("select count(*) from shopsync.change_log where row_id = %s", (cust["id"],)) == [(2,)]
    row = a1.store.get("customers", cust["id"])
    assert (row["version"], row["phone"], row["sync_state"]) == (2, "1", "synced")
    assert a1.client.status().last_error is None


def test_a_rejected_event_does_not_block_the_ones_behind_it(make_device: Any, sql: Any) -> None:
    a1 = make_device("a1", batch_size=2)
    bad = a1.store.insert("products", {"sku": "NEG", "name": "Negative", "price": "-1.00"})
    good = [a1.store.insert("customers", {"name": f"Good {i}"}) for i in range(3)]
    order = a1.store.insert("orders", {"total": "5.00"})
    a1.store.update("orders", order["id"], {"status": "bogus"})
    r = a1.client.sync()
    assert r.ok and r.pushed == 6 and r.applied == 4 and r.rejected == 2
    assert sorted(x.reason for x in r.rejections) == ["check_violation", "check_violation"]
    failed = a1.store.get("products", bad["id"])
    assert failed["sync_state"] == "failed" and failed["last_error"].startswith("check_violation")
    assert a1.store.get("orders", order["id"])["sync_state"] == "failed"
    assert all(a1.store.get("customers", g["id"])["sync_state"] == "synced" for g in good)
    assert a1.client.status().pending_uploads == 0
    assert sql("select count(*) from public.products where id = %s", (bad["id"],)) == [(0,)]
    assert sql("select status from public.orders where id = %s", (order["id"],)) == [("pending",)]


def test_whole_call_failures_leave_the_outbox_untouched(make_device: Any, client_stack: Any) -> None:
    from shopsync_stack import mint_user_token

    viewer = make_device("v1", "viewer@shop-a.test")
    staff = make_device("a1", "staff@shop-a.test")
    staff.store.insert("customers", {"name": "Seen by the viewer"})
    staff.client.sync().raise_for_errors()
    viewer.store.insert("customers", {"name": "Viewer cannot"})
    queued = [e.event_id for e in viewer.store.outbox.all()]
    r = viewer.client.sync()
    assert isinstance(r.errors[0], ForbiddenError) and r.errors[0].reason == "role_forbidden"
    assert r.errors[0].status == 403 and len(r.errors) == 1 and r.pulled >= 1  # the pull still ran
    assert viewer.store.query("customers", {"name": "Seen by the viewer"})
    assert [e.event_id for e in viewer.store.outbox.all()] == queued
    assert viewer.store.outbox.all()[0].attempts == 1

    expired = mint_user_token(client_stack, "staff@shop-a.test", expires_in=-60)
    stale = make_device("s1", sync=False, access_token=expired)
    r = stale.client.sync()
    assert isinstance(r.errors[0], AuthError) and r.errors[0].status == 401
    assert stale.client.status().last_error


def test_an_expired_token_is_refreshed_once(make_device: Any, client_stack: Any) -> None:
    from shopsync_stack import mint_user_token

    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return mint_user_token(client_stack, "staff@shop-a.test", expires_in=-60 if len(calls) == 1 else 600)

    dev = make_device("t1", access_token=token)
    dev.store.insert("customers", {"name": "Fresh token"})
    assert dev.client.sync().ok and len(calls) == 2


def test_a_lost_answer_does_not_mask_newer_server_values(make_device: Any) -> None:
    """The insert committed but its answer was lost; another device renamed the row; a pull came
    before the retry. After the retry (duplicate) the row shows the server's newer name."""
    a1 = make_device("a1", transport_wrapper=DropFirstPushResponse)
    cust = a1.store.insert("customers", {"name": "First name"})
    assert not a1.client.sync().ok
    a2 = make_device("a2")
    a2.store.update("customers", cust["id"], {"name": "Renamed"})
    a2.client.sync().raise_for_errors()
    a1.client.pull().raise_for_errors()
    assert a1.store.get("customers", cust["id"])["name"] == "First name"  # still pending on top
    r = a1.client.sync()
    assert r.duplicates == 1
    row = a1.store.get("customers", cust["id"])
    assert (row["name"], row["version"], row["sync_state"]) == ("Renamed", 2, "synced")
    assert snapshot(a1.store) == snapshot(a2.store)


def test_device_and_licence_refusals_map_to_errors(make_device: Any, sql: Any) -> None:
    from shopsync import DeviceError

    ghost = make_device("ghost", sync=False)
    ghost.client.refresh_schema()
    ghost.store.set_meta("registered_at", "2026-01-01T00:00:00Z")  # believes it registered; the server disagrees
    with pytest.raises(DeviceError) as refused:
        ghost.client.transport.call("sync_pull", {"p_device_id": ghost.store.device_id, "p_cursor": 0})
    assert (refused.value.status, refused.value.reason) == (404, "device_not_registered")
    assert ghost.client.sync().ok  # ... and sync() registers it again (test_a_device_the_server_forgot_...)

    [(limit,)] = sql("select max_devices from public.licenses where shop_id = %s", (SHOP_B,))
    sql("update public.licenses set max_devices = 0 where shop_id = %s", (SHOP_B,))
    try:
        late = make_device("late", "staff@shop-b.test", sync=False)
        r = late.client.sync()
    finally:
        sql("update public.licenses set max_devices = %s where shop_id = %s", (limit, SHOP_B))
    assert isinstance(r.errors[0], LicenceError) and r.errors[0].reason == "device_limit_reached"
    assert late.client.status().licence_state == "device_limit_reached"


def test_rate_limited_pushes_keep_the_outbox_and_report_the_window(make_device: Any, sql: Any, tmp_path: Any,
                                                                   client_stack: Any, token_for: Any) -> None:
    from shopsync import LocalStore, RateLimitedError, SyncClient

    # Built from URL + anon key + token, no supabase client in sight.
    store = LocalStore(tmp_path / "url.db")
    dev = SyncClient(store, url=client_stack.api_url, anon_key=client_stack.anon_key,
                     access_token=token_for("staff@shop-a.test"), batch_size=1)
    dev.sync().raise_for_errors()
    [(limit,)] = sql("select value from shopsync.config where key = 'push_calls_per_minute'")
    sql("update shopsync.config set value = '2' where key = 'push_calls_per_minute'")
    try:
        for i in range(3):
            store.insert("customers", {"name": f"Burst {i}"})
        r = dev.sync()
    finally:
        sql("update shopsync.config set value = %s where key = 'push_calls_per_minute'", (str(limit),))
        window_end = sql("select window_start + interval '1 minute' from shopsync.device_rate where device_id = %s",
                         (store.device_id,))
        sql("delete from shopsync.device_rate where device_id = %s", (store.device_id,))
    assert isinstance(r.errors[0], RateLimitedError) and r.errors[0].retryable and r.applied == 2
    status = dev.status()
    assert status.pending_uploads == 1 and status.rate_limited_until is not None
    # The 429 lifts when the device's rate window ends (a minute after its first push), as the
    # server's hint says: not at the next calendar minute.
    assert status.rate_limited_until == window_end[0][0].replace(
        microsecond=window_end[0][0].microsecond // 1000 * 1000)
    assert store.outbox.all()[0].next_attempt_at is not None  # when the 429 window ends
    assert dev.sync().ok and dev.status().pending_uploads == 0
    store.close()


def test_a_device_the_server_forgot_registers_again_and_loses_nothing(make_device: Any, sql: Any) -> None:
    """A restore from a backup taken before the device registered: the server has no such device."""
    a1 = make_device("a1")
    early = a1.store.insert("customers", {"name": "Before the restore"})
    a1.client.sync().raise_for_errors()
    sql("delete from public.devices where id = %s", (a1.store.device_id,))
    late = a1.store.insert("customers", {"name": "After the restore"})
    result = a1.client.sync()
    assert result.ok, result.errors
    assert (result.pushed, result.applied) == (1, 1)
    assert sql("select count(*) from public.devices where id = %s", (a1.store.device_id,)) == [(1,)]
    assert sql("select name from public.customers where id = any(%s::uuid[]) order by name",
               ([early["id"], late["id"]],)) == [("After the restore",), ("Before the restore",)]
    assert a1.client.status().pending_uploads == 0 and a1.client.status().last_error is None
    # A revoked device is not re-registered behind the owner's back.
    sql("update public.devices set revoked_at = now() where id = %s", (a1.store.device_id,))
    a1.store.insert("customers", {"name": "From a revoked till"})
    refused = a1.client.sync()
    assert [e.reason for e in refused.errors] == ["device_revoked"]
    assert a1.client.status().pending_uploads == 1


def test_a_batch_bigger_than_the_server_takes_is_split_not_wedged(make_device: Any, sql: Any) -> None:
    """A client configured with batches the server refuses (more events than push_max_events)
    used to fail the same call at every sync, for good: the batch is halved until it goes."""
    (old,) = sql("select value::text from shopsync.config where key = 'push_max_events'")[0]
    sql("update shopsync.config set value = '2' where key = 'push_max_events'")
    try:
        a1 = make_device("a1", batch_size=5)
        rows = [a1.store.insert("customers", {"name": f"Split {i}"}) for i in range(5)]
        r = a1.client.sync()
    finally:
        sql("update shopsync.config set value = %s::jsonb where key = 'push_max_events'", (old,))
    assert r.ok and r.pushed == 5 and r.applied == 5, r
    assert all(a1.store.get("customers", x["id"])["sync_state"] == "synced" for x in rows)


def test_an_event_bigger_than_any_call_is_rejected_and_the_rest_goes_on(make_device: Any, sql: Any) -> None:
    """One event over the server's body limit (the local gateway takes 8 MiB) could never be sent:
    it used to fail every push, and every event queued behind it waited for good. It is rejected on
    the device (payload_too_large, the row stays shown, failed) and the others reach the server."""
    a1 = make_device("a1", batch_size=500)
    before = a1.store.insert("customers", {"name": "Queued before"})
    huge = a1.store.insert("customers", {"name": "Huge", "notes": "x" * (9 << 20)})
    after = a1.store.insert("customers", {"name": "Queued after"})
    r = a1.client.sync()
    assert r.ok and a1.client.status().pending_uploads == 0, r
    for row in (before, after):
        assert a1.store.get("customers", row["id"])["sync_state"] == "synced"
    if sql("select count(*) from public.customers where id = %s", (huge["id"],)) == [(0,)]:  # over the limit
        assert [x.reason for x in r.rejections] == ["payload_too_large"] and r.applied == 2
        got = a1.store.get("customers", huge["id"])
        assert got["sync_state"] == "failed" and got["last_error"].startswith("payload_too_large")
    else:  # a server without such a limit took it
        assert r.applied == 3
