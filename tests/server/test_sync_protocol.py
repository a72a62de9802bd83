"""Protocol v1 end to end: supabase-py → gateway → RPCs, with tokens minted for the seed's users."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from postgrest.exceptions import APIError
from sync_helpers import SHOP_A, SHOP_B, config_value, event, pull_all, push, register, rpc, user_client

from shopsync_stack.settings import StackSettings


@pytest.fixture(scope="module")
def staff_a(settings: StackSettings, pg: psycopg.Connection):
    return user_client(settings, "staff@shop-a.test")


@pytest.fixture(scope="module")
def owner_a(settings: StackSettings, pg: psycopg.Connection):
    return user_client(settings, "owner@shop-a.test")


@pytest.fixture(scope="module")
def staff_b(settings: StackSettings, pg: psycopg.Connection):
    return user_client(settings, "staff@shop-b.test")


def new_customer(client, device: str, **data) -> tuple[str, dict]:
    row_id = str(uuid.uuid4())
    result = push(client, device, [event("customers", "insert", row_id, {"name": "Ada", **data})])[0]
    assert result["status"] == "applied", result
    return row_id, result


def test_two_devices_converge_through_push_and_pull(staff_a, owner_a, staff_b):
    till1, till2 = register(staff_a, "till 1"), register(owner_a, "till 2")
    _, cursor2 = pull_all(owner_a, till2)
    row_id, _ = new_customer(staff_a, till1, email="ada@example.test")
    changes, cursor2b = pull_all(owner_a, till2, cursor2)
    assert [c["row_id"] for c in changes] == [row_id]
    assert changes[0]["row"]["email"] == "ada@example.test" and changes[0]["version"] == 1
    assert cursor2b > cursor2
    # Shop B's device sees none of it.
    b_dev = register(staff_b, "till b")
    b_changes, _ = pull_all(staff_b, b_dev)
    assert all(c["row"]["shop_id"] == SHOP_B for c in b_changes)
    assert row_id not in {c["row_id"] for c in b_changes}


def test_replayed_batch_comes_back_duplicate_and_changes_nothing(staff_a, pg):
    dev = register(staff_a)
    row_id = str(uuid.uuid4())
    batch = [event("customers", "insert", row_id, {"name": "Once"}),
             event("customers", "update", row_id, {"phone": "1"}, base_version=1)]
    first = push(staff_a, dev, batch)
    seq_before = pg.execute("select last_seq from shopsync.shop_cursor where shop_id = %s", (SHOP_A,)).fetchone()[0]
    again = push(staff_a, dev, batch)
    assert [r["status"] for r in first] == ["applied", "applied"]
    assert [(r["status"], r["original_status"], r["version"]) for r in again] == [
        ("duplicate", "applied", 1), ("duplicate", "applied", 2)]
    assert pg.execute("select last_seq from shopsync.shop_cursor where shop_id = %s", (SHOP_A,)).fetchone()[0] == seq_before
    assert pg.execute("select version from public.customers where id = %s", (row_id,)).fetchone()[0] == 2


def test_rejected_events_do_not_block_the_batch_and_leave_no_trace(staff_a, pg):
    dev = register(staff_a)
    good1, good2 = str(uuid.uuid4()), str(uuid.uuid4())
    bad = [
        event("nope", "insert", str(uuid.uuid4()), {"name": "x"}),
        event("customers", "insert", str(uuid.uuid4()), {"name": "x", "shoe_size": 42}),
        event("customers", "insert", str(uuid.uuid4()), {"name": 12}),
        event("products", "insert", str(uuid.uuid4()), {"sku": "N", "name": "n", "price": -1}),
        event("customers", "insert", str(uuid.uuid4()), {"email": "no-name@example.test"}),
    ]
    batch = [event("customers", "insert", good1, {"name": "Good 1"}), *bad,
             event("customers", "insert", good2, {"name": "Good 2"})]
    results = push(staff_a, dev, batch)
    assert [r["status"] for r in results] == ["applied"] + ["rejected"] * 5 + ["applied"]
    assert [r["reason"] for r in results[1:6]] == [
        "unknown_table", "unknown_column", "invalid_value", "check_violation", "missing_column"]
    bad_ids = [e["row_id"] for e in bad]
    bad_events = [e["event_id"] for e in bad]
    assert pg.execute("select count(*) from shopsync.change_log where row_id = any(%s::uuid[])", (bad_ids,)).fetchone()[0] == 0
    assert pg.execute("select count(*) from shopsync.push_results where event_id = any(%s::uuid[])", (bad_events,)).fetchone()[0] == 0
    assert pg.execute("select count(*) from public.customers where id = any(%s::uuid[])", ([good1, good2],)).fetchone()[0] == 2


def test_stale_update_of_other_columns_is_merged(staff_a, owner_a):
    d1, d2 = register(staff_a), register(owner_a)
    row_id, _ = new_customer(staff_a, d1)
    r1 = push(staff_a, d1, [event("customers", "update", row_id, {"email": "a@x.test"}, base_version=1)])[0]
    r2 = push(owner_a, d2, [event("customers", "update", row_id, {"phone": "555"}, base_version=1)])[0]
    assert (r1["status"], r1["version"]) == ("applied", 2)
    assert (r2["status"], r2["version"]) == ("merged", 3)
    changes, _ = pull_all(owner_a, d2)
    final = [c for c in changes if c["row_id"] == row_id][-1]["row"]
    assert (final["email"], final["phone"]) == ("a@x.test", "555")


def test_last_write_wins_keeps_the_later_client_timestamp(staff_a, owner_a):
    d1, d2 = register(staff_a), register(owner_a)
    row_id, _ = new_customer(staff_a, d1)
    now = datetime.now(timezone.utc)
    early, late = (now - timedelta(minutes=10)).isoformat(), (now - timedelta(minutes=5)).isoformat()
    push(staff_a, d1, [event("customers", "update", row_id, {"name": "Late"}, base_version=1, client_ts=late)])
    lost = push(owner_a, d2, [event("customers", "update", row_id, {"name": "Early", "phone": "9"},
                                    base_version=1, client_ts=early)])[0]
    assert (lost["status"], lost["reason"]) == ("conflict", "overridden")
    assert lost["server_row"]["name"] == "Late" and lost["server_row"]["phone"] == "9"  # the rest applied
    # A client clock far in the future is clamped to the server's: it cannot win for ever.
    future = (now + timedelta(days=365)).isoformat()
    won = push(owner_a, d2, [event("customers", "update", row_id, {"name": "Future"}, base_version=1, client_ts=future)])[0]
    assert won["status"] == "merged"
    later = push(staff_a, d1, [event("customers", "update", row_id, {"name": "Now"}, base_version=2)])[0]
    assert later["status"] == "merged", later  # its real timestamp is later than the clamped one


def test_server_wins_conflict_returns_the_server_row(owner_a, settings, pg):
    owner2 = user_client(settings, "owner@shop-a.test")
    d1, d2 = register(owner_a), register(owner2)
    row_id = str(uuid.uuid4())
    push(owner_a, d1, [event("shop_settings", "insert", row_id, {"key": f"k-{row_id}", "value": {"a": 1}})])
    push(owner_a, d1, [event("shop_settings", "update", row_id, {"value": {"a": 2}}, base_version=1)])
    res = push(owner2, d2, [event("shop_settings", "update", row_id, {"value": {"a": 3}}, base_version=1)])[0]
    assert (res["status"], res["reason"], res["server_row"]["value"]) == ("conflict", "concurrent_update", {"a": 2})
    assert pg.execute("select value from public.shop_settings where id = %s", (row_id,)).fetchone()[0] == {"a": 2}


def test_manual_policy_conflict_is_not_applied(staff_a, owner_a, pg):
    d1, d2 = register(staff_a), register(owner_a)
    order_id = str(uuid.uuid4())
    push(staff_a, d1, [event("orders", "insert", order_id, {"order_code": "O-1", "total": "10.00"})])
    push(staff_a, d1, [event("orders", "update", order_id, {"total": "12.00"}, base_version=1)])
    res = push(owner_a, d2, [event("orders", "update", order_id, {"total": "11.00"}, base_version=1)])[0]
    assert (res["status"], res["reason"]) == ("conflict", "concurrent_update")
    assert res["server_row"]["total"] == 12.0
    assert str(pg.execute("select total from public.orders where id = %s", (order_id,)).fetchone()[0]) == "12.00"


def test_order_status_moves_forward_only_unless_the_owner_overrides(staff_a, owner_a):
    d1, d2 = register(staff_a), register(owner_a)
    order_id = str(uuid.uuid4())
    push(staff_a, d1, [event("orders", "insert", order_id, {"status": "paid"})])
    back = push(staff_a, d1, [event("orders", "update", order_id, {"status": "pending"}, base_version=1)])[0]
    assert (back["status"], back["reason"]) == ("rejected", "invalid_transition")
    forced = push(staff_a, d1, [event("orders", "update", order_id, {"status": "pending"}, base_version=1, override=True)])[0]
    assert forced["reason"] == "invalid_transition"  # only an owner may override
    owner = push(owner_a, d2, [event("orders", "update", order_id, {"status": "pending"}, base_version=1, override=True)])[0]
    assert owner["status"] == "applied"


def test_delete_then_update_is_a_row_deleted_conflict(staff_a, owner_a):
    d1, d2 = register(staff_a), register(owner_a)
    row_id, _ = new_customer(staff_a, d1)
    gone = push(staff_a, d1, [event("customers", "delete", row_id, base_version=1)])[0]
    assert (gone["status"], gone["version"]) == ("applied", 2)
    res = push(owner_a, d2, [event("customers", "update", row_id, {"phone": "1"}, base_version=1)])[0]
    assert (res["status"], res["reason"]) == ("conflict", "row_deleted")
    assert res["server_row"]["deleted_at"] is not None
    again = push(owner_a, d2, [event("customers", "insert", row_id, {"name": "Again"})])[0]
    assert (again["status"], again["reason"]) == ("conflict", "id_exists")


def test_another_shops_row_is_rejected_as_not_found(staff_a, staff_b):
    d_a, d_b = register(staff_a), register(staff_b)
    row_id, _ = new_customer(staff_a, d_a)
    res = push(staff_b, d_b, [event("customers", "update", row_id, {"name": "Mine now"}, base_version=1)])[0]
    assert (res["status"], res["reason"], res["server_row"]) == ("rejected", "not_found", None)
    steal = push(staff_b, d_b, [event("customers", "insert", row_id, {"name": "Copy"})])[0]
    # Nothing of shop A leaks, not even that the row exists there (issue 12 finding 5): the id is
    # unavailable, as any id taken anywhere is.
    assert (steal["status"], steal["reason"], steal["server_row"]) == ("rejected", "id_unavailable", None)


def test_expired_licence_refuses_push_but_not_pull(staff_a, pg):
    dev = register(staff_a)
    pg.execute("update public.licenses set valid_until = now() - interval '1 day' where shop_id = %s", (SHOP_A,))
    try:
        with pytest.raises(APIError) as exc:
            push(staff_a, dev, [event("customers", "insert", str(uuid.uuid4()), {"name": "x"})])
        assert (exc.value.code, exc.value.details) == ("PT402", "licence_expired")
        page = rpc(staff_a, "sync_pull", p_device_id=dev, p_cursor=0, p_limit=10)
        assert page["changes"]
    finally:
        pg.execute("update public.licenses set valid_until = now() + interval '1 year' where shop_id = %s", (SHOP_A,))


def test_push_rate_limit_answers_429_and_applies_nothing(staff_a, pg):
    dev = register(staff_a)
    with config_value(pg, "push_calls_per_minute", "2"):
        push(staff_a, dev, [])
        push(staff_a, dev, [])
        row_id = str(uuid.uuid4())
        with pytest.raises(APIError) as exc:
            push(staff_a, dev, [event("customers", "insert", row_id, {"name": "x"})])
    assert (exc.value.code, exc.value.details) == ("PT429", "rate_limited")
    assert pg.execute("select count(*) from public.customers where id = %s", (row_id,)).fetchone()[0] == 0


def test_a_batch_over_the_limit_is_refused_whole(staff_a, pg):
    dev = register(staff_a)
    events = [event("customers", "insert", str(uuid.uuid4()), {"name": "x"}) for _ in range(1001)]
    with pytest.raises(APIError) as exc:
        push(staff_a, dev, events)
    assert (exc.value.code, exc.value.details) == ("PT400", "batch_too_large")
    ids = [e["row_id"] for e in events]
    assert pg.execute("select count(*) from public.customers where id = any(%s::uuid[])", (ids,)).fetchone()[0] == 0


def test_viewer_pulls_but_cannot_push(settings):
    viewer = user_client(settings, "viewer@shop-a.test")
    dev = register(viewer, by=user_client(settings, "owner@shop-a.test"))
    assert rpc(viewer, "sync_pull", p_device_id=dev, p_cursor=0, p_limit=5)["changes"]
    with pytest.raises(APIError) as exc:
        push(viewer, dev, [])
    assert (exc.value.code, exc.value.details) == ("PT403", "role_forbidden")


def test_revoked_device_can_neither_push_nor_pull(staff_a, pg):
    dev = register(staff_a)
    pg.execute("update public.devices set revoked_at = now() where id = %s", (dev,))
    for call in (lambda: push(staff_a, dev, []),
                 lambda: rpc(staff_a, "sync_pull", p_device_id=dev, p_cursor=0, p_limit=5),
                 lambda: rpc(staff_a, "sync_register_device", p_device_id=dev, p_name="again")):
        with pytest.raises(APIError) as exc:
            call()
        assert (exc.value.code, exc.value.details) == ("PT403", "device_revoked")


def test_device_limit_is_enforced_at_registration(settings, pg):
    owner_b = user_client(settings, "owner@shop-b.test")
    active = pg.execute("select count(*) from public.devices where shop_id = %s and revoked_at is null", (SHOP_B,)).fetchone()[0]
    pg.execute("update public.licenses set max_devices = %s where shop_id = %s", (active + 1, SHOP_B))
    try:
        register(owner_b)
        with pytest.raises(APIError) as exc:
            register(owner_b)
        assert (exc.value.code, exc.value.details) == ("PT402", "device_limit_reached")
    finally:
        pg.execute("update public.licenses set max_devices = 10000 where shop_id = %s", (SHOP_B,))


def test_pull_below_the_floor_requires_a_reset(staff_a, pg):
    dev = register(staff_a)
    _, cursor = pull_all(staff_a, dev)
    new_customer(staff_a, dev)
    pg.execute("update shopsync.shop_cursor set floor_seq = last_seq where shop_id = %s", (SHOP_A,))
    try:
        page = rpc(staff_a, "sync_pull", p_device_id=dev, p_cursor=cursor, p_limit=10)
        assert page["reset_required"] is True and page["cursor"] == 0 and page["changes"] == []
        fresh = rpc(staff_a, "sync_pull", p_device_id=dev, p_cursor=0, p_limit=10)
        assert fresh["reset_required"] is False and fresh["changes"]
    finally:
        pg.execute("update shopsync.shop_cursor set floor_seq = 0 where shop_id = %s", (SHOP_A,))


def test_sync_schema_and_metrics(owner_a, staff_a):
    schema = rpc(staff_a, "sync_schema")
    policies = {t["name"]: t["policy"] for t in schema["tables"]}
    assert policies.items() >= {"shop_settings": "server_wins", "customers": "last_write_wins",
                                "products": "last_write_wins", "orders": "manual", "order_items": "manual",
                                "invoices": "append_only"}.items()
    assert schema["version"] >= 5
    metrics = rpc(owner_a, "sync_metrics")
    assert metrics["devices"] and metrics["days"][0]["pushes"] >= 1
    with pytest.raises(APIError) as exc:
        rpc(staff_a, "sync_metrics")
    assert exc.value.details == "role_forbidden"


def test_seq_is_commit_ordered_so_a_concurrent_puller_never_skips_a_row(settings, staff_a, pg):
    """Writers commit out of the order they started in; a puller polling all along sees every row."""
    puller_dev = register(staff_a, "puller")
    _, start = pull_all(staff_a, puller_dev)
    writers, txns_each = 4, 25
    done = threading.Event()
    errors: list[BaseException] = []
    written: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        try:
            with psycopg.connect(settings.db_url) as conn:
                for i in range(txns_each):
                    ids = [str(uuid.uuid4()) for _ in range(1 + (i * 7 + n) % 5)]
                    with conn.transaction():
                        conn.execute(
                            "insert into public.customers (id, shop_id, name) select x, %s, 'stress' from unnest(%s::uuid[]) x",
                            (SHOP_A, ids))
                        # Hold the transaction open a little after taking seqs, so commits interleave.
                        conn.execute("select pg_sleep(random() * 0.004)")
                    with lock:
                        written.extend(ids)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    seen: list[int] = []
    seen_rows: set[str] = set()

    def puller() -> None:
        client = user_client(settings, "staff@shop-a.test")
        cursor = start
        while True:
            finished = done.is_set()
            page = rpc(client, "sync_pull", p_device_id=puller_dev, p_cursor=cursor, p_limit=37)
            seen.extend(c["seq"] for c in page["changes"])
            seen_rows.update(c["row_id"] for c in page["changes"])
            cursor = page["cursor"]
            if finished and not page["has_more"]:
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    pull_thread = threading.Thread(target=puller)
    pull_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    pull_thread.join(timeout=120)
    assert not errors, errors
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert seen == list(range(start + 1, start + 1 + len(seen))), "a seq was skipped"
    assert set(written) <= seen_rows
    logged = pg.execute("select count(*) from shopsync.change_log where shop_id = %s and seq > %s",
                        (SHOP_A, start)).fetchone()[0]
    assert logged == len(seen)


def test_error_bodies_follow_postgrest(settings):
    """Whole-call failures reach supabase-py as APIError with PostgREST's fields."""
    anon = user_client.__globals__["create_client"](settings.api_url, settings.anon_key)
    with pytest.raises(APIError) as exc:
        anon.rpc("sync_push", {"p_device_id": str(uuid.uuid4()), "p_events": []}).execute()
    assert exc.value.code == "42501"
    body = exc.value.json()
    assert set(body) >= {"code", "message", "details", "hint"}
    json.dumps(body)
