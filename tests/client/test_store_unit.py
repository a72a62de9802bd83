"""The store layer on its own: rows, outbox, conflicts, bases and meta of a fresh in-memory store
built from the fixture schema document. No Postgres, no network; milliseconds each."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from shopsync import LocalStore, NotFoundError, QueueSummary, SchemaError

SHOP = "aaaaaaaa-0000-4000-8000-000000000000"


def server_customer(row_id: str | None = None, *, version: int = 1, **values: Any) -> dict[str, Any]:
    """A customers row in stored form, as a pull or a push answer brings it."""
    now = "2026-01-01T00:00:00Z"
    return {"id": row_id or str(uuid.uuid4()), "shop_id": SHOP, "customer_code": "C-SRV-0001", "name": "Server",
            "email": None, "phone": None, "notes": None, "version": version, "created_at": now,
            "updated_at": now, "deleted_at": None, "last_device_id": None, "client_changed_at": now, **values}


# -- meta -------------------------------------------------------------------------------------------
def test_meta_round_trips_and_a_new_store_has_a_device_id_and_cursor_0(fresh_store: LocalStore) -> None:
    assert uuid.UUID(fresh_store.device_id) and fresh_store.cursor == 0
    assert len(fresh_store.device_prefix) == 6
    fresh_store.set_meta("cursor", 42)
    fresh_store.set_meta("last_error", None)
    assert fresh_store.cursor == 42 and fresh_store.get_meta("cursor") == "42"
    assert fresh_store.get_meta("last_error", "none") == "none"


def test_the_device_identity_is_read_while_another_thread_holds_a_transaction(fresh_store: LocalStore) -> None:
    """The pull's prefetch thread names the device and sends its secret while the main thread
    writes a page: those reads must not wait for the page's transaction (they once did, and the
    next page was only asked for after the previous one was written)."""
    import threading

    fresh_store.set_device_secret("s1")
    assert fresh_store.device_secret == "s1"
    device = fresh_store.device_id
    inside, release, read = threading.Event(), threading.Event(), threading.Event()
    seen: list[Any] = []

    def writer() -> None:
        with fresh_store.transaction():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(10)

    def reader() -> None:
        seen.extend([fresh_store.device_id, fresh_store.device_secret])
        read.set()

    threading.Thread(target=reader).start()
    try:
        assert read.wait(10), "reading the device's identity waited for another thread's transaction"
    finally:
        release.set()
        t.join(10)
    assert seen == [device, "s1"]


def test_a_secret_set_in_a_rolled_back_transaction_is_not_used(fresh_store: LocalStore) -> None:
    fresh_store.set_device_secret("old")
    assert fresh_store.device_secret == "old"
    with pytest.raises(RuntimeError):
        with fresh_store.transaction():
            fresh_store.set_device_secret("new")
            assert fresh_store.device_secret == "new"  # this transaction sees its own write
            raise RuntimeError("rolled back")
    assert fresh_store.device_secret == "old"
    fresh_store.set_device_secret("rotated")
    assert fresh_store.device_secret == "rotated"


def test_the_schema_is_cached_in_the_file(tmp_path: Any, schema_fixture: dict[str, Any]) -> None:
    LocalStore(tmp_path / "a.db", schema=schema_fixture).close()
    again = LocalStore(tmp_path / "a.db")
    assert again.has_schema and again.schema.version == schema_fixture["version"]
    assert again.apply_schema(schema_fixture) is False
    again.close()


def test_without_a_schema_the_store_says_so() -> None:
    store = LocalStore(":memory:")
    assert not store.has_schema
    with pytest.raises(SchemaError):
        store.table("customers")
    store.close()


def test_a_new_column_on_a_table_with_rows_sends_the_cursor_back(fresh_store: LocalStore,
                                                                  schema_fixture: dict[str, Any]) -> None:
    with fresh_store.transaction():
        fresh_store.write_row("customers", server_customer())
    fresh_store.set_meta("cursor", 10)
    doc = copy.deepcopy(schema_fixture)
    doc["version"] = int(doc["version"]) + 1
    table = next(t for t in doc["tables"] if t["name"] == "customers")
    table["columns"].append({"name": "vip", "type": "boolean", "nullable": True, "system": False})
    assert fresh_store.apply_schema(doc) is True
    assert fresh_store.cursor == 0 and fresh_store.table("customers").has_column("vip")


# -- rows -------------------------------------------------------------------------------------------
def test_write_row_upserts_and_stored_row_reads_it_back(fresh_store: LocalStore) -> None:
    row = server_customer()
    with fresh_store.transaction():
        fresh_store.write_row("customers", {**row, "sync_state": "synced", "last_error": None})
        fresh_store.write_row("customers", {"id": row["id"], "name": "Renamed"})
    stored = fresh_store.stored_row("customers", row["id"])
    assert stored is not None and stored["name"] == "Renamed" and stored["version"] == 1
    assert stored["sync_state"] == "synced"
    assert fresh_store.stored_row("customers", str(uuid.uuid4())) is None
    assert [r["id"] for r in fresh_store.stored_rows("customers")] == [row["id"]]


def test_write_rows_takes_many_rows_at_once(fresh_store: LocalStore) -> None:
    rows = [server_customer(name=f"c{i}") for i in range(50)]
    cols = [*rows[0], "sync_state", "last_error"]
    with fresh_store.transaction():
        fresh_store.write_rows("customers", cols, [[*r.values(), "synced", None] for r in rows])
    assert fresh_store.count("customers") == 50
    states = fresh_store.versions_and_states("customers", [r["id"] for r in rows[:3]] + [str(uuid.uuid4())])
    assert states == {r["id"]: (1, "synced") for r in rows[:3]}


def test_mark_synced_keeps_the_higher_version_and_clears_the_error(fresh_store: LocalStore) -> None:
    a, b = server_customer(version=5), server_customer(version=1)
    with fresh_store.transaction():
        for r in (a, b):
            fresh_store.write_row("customers", {**r, "sync_state": "failed", "last_error": "boom"})
        fresh_store.mark_synced("customers", [(3, a["id"]), (7, b["id"])])
    assert fresh_store.versions_and_states("customers", [a["id"], b["id"]]) == {
        a["id"]: (5, "synced"), b["id"]: (7, "synced")}
    assert fresh_store.stored_row("customers", a["id"])["last_error"] is None  # type: ignore[index]


def test_a_local_insert_is_pending_and_its_overlay_is_its_values(fresh_store: LocalStore) -> None:
    row = fresh_store.insert("customers", {"name": "Ada"})
    assert fresh_store.row_state("customers", row["id"]) == "pending_create"
    assert fresh_store.pending_overlay("customers", row["id"])["name"] == "Ada"
    assert fresh_store.rows_with_local_changes("customers", [row["id"], str(uuid.uuid4())]) == {row["id"]}
    fresh_store.delete("customers", row["id"])
    assert fresh_store.row_state("customers", row["id"]) == "pending_create"
    assert fresh_store.pending_overlay("customers", row["id"])["deleted_at"] is not None


def test_row_state_of_a_row_with_nothing_queued_is_the_default(fresh_store: LocalStore) -> None:
    rid = str(uuid.uuid4())
    assert fresh_store.row_state("customers", rid) == "synced"
    assert fresh_store.row_state("customers", rid, default="failed") == "failed"


def test_adopting_a_server_row_keeps_queued_values_on_top_and_keeps_a_base(fresh_store: LocalStore) -> None:
    row = server_customer(name="Server", phone="1")
    with fresh_store.transaction():
        fresh_store.adopt_server_row("customers", row["id"], row)
    assert fresh_store.get("customers", row["id"])["sync_state"] == "synced"  # type: ignore[index]
    assert fresh_store.bases.get("customers", row["id"]) is None
    fresh_store.update("customers", row["id"], {"name": "Local"})
    newer = {**row, "version": 2, "phone": "2"}
    with fresh_store.transaction():
        fresh_store.adopt_server_row("customers", row["id"], newer)
    got = fresh_store.get("customers", row["id"])
    assert got is not None and (got["name"], got["phone"], got["version"]) == ("Local", "2", 2)
    assert got["sync_state"] == "pending_update"
    assert fresh_store.bases.get("customers", row["id"]) == newer
    with fresh_store.transaction():  # an older server version changes nothing
        fresh_store.adopt_server_row("customers", row["id"], {**row, "phone": "old"})
    assert fresh_store.get("customers", row["id"])["phone"] == "2"  # type: ignore[index]


def test_forget_synced_rows_keeps_pending_rows_and_resets_the_cursor(fresh_store: LocalStore) -> None:
    synced = server_customer()
    with fresh_store.transaction():
        fresh_store.adopt_server_row("customers", synced["id"], synced)
    mine = fresh_store.insert("customers", {"name": "Queued"})
    fresh_store.set_meta("cursor", 99)
    fresh_store.forget_synced_rows()
    assert [r["id"] for r in fresh_store.stored_rows("customers")] == [mine["id"]]
    assert fresh_store.cursor == 0 and fresh_store.outbox.count() == 1


# -- outbox -----------------------------------------------------------------------------------------
def test_queued_counts_and_remove_many(fresh_store: LocalStore) -> None:
    a = fresh_store.insert("customers", {"name": "A"})
    fresh_store.update("customers", a["id"], {"name": "A2"})
    b = fresh_store.insert("customers", {"name": "B"})
    with fresh_store.transaction():
        assert fresh_store.outbox.queued_counts("customers", [a["id"], b["id"], str(uuid.uuid4())]) == {
            a["id"]: 2, b["id"]: 1}
        entries = fresh_store.outbox.all()
        fresh_store.outbox.remove_many(e.event_id for e in entries if e.row_id == a["id"])
        assert [e.row_id for e in fresh_store.outbox.all()] == [b["id"]]
    assert fresh_store.queue_summary() == QueueSummary(1, {"customers": 1}, entries[-1].created_at, 0)


def test_note_failed_call_counts_attempts_and_keeps_the_events(fresh_store: LocalStore) -> None:
    fresh_store.insert("customers", {"name": "A"})
    with fresh_store.transaction():
        [e] = fresh_store.outbox.all()
        fresh_store.outbox.note_failed_call([e.event_id], "network", None)
        [again] = fresh_store.outbox.all()
    assert (again.event_id, again.attempts, again.last_error) == (e.event_id, 1, "network")


# -- conflicts --------------------------------------------------------------------------------------
def _open_conflict(store: LocalStore) -> tuple[dict[str, Any], int]:
    order = {"id": str(uuid.uuid4()), "shop_id": SHOP, "order_code": "O-SRV-0001", "customer_id": None,
             "status": "open", "total": "10.00", "version": 2, "created_at": "2026-01-01T00:00:00Z",
             "updated_at": "2026-01-01T00:00:00Z", "deleted_at": None, "last_device_id": None,
             "client_changed_at": "2026-01-01T00:00:00Z"}
    with store.transaction():
        cid = store.conflict_log.add("orders", order["id"], {"status": "paid"}, order, 1, "concurrent_update",
                                     "manual", "2026-01-01T00:00:01Z")
        store.adopt_server_row("orders", order["id"], order)
    return order, cid


def test_an_open_conflict_shows_on_the_row_and_in_the_log(fresh_store: LocalStore) -> None:
    order, cid = _open_conflict(fresh_store)
    row = fresh_store.get("orders", order["id"])
    assert row is not None and row["sync_state"] == "conflict" and row["status"] == "paid"
    with fresh_store.transaction():
        assert fresh_store.conflict_log.open_rows("orders", [order["id"], str(uuid.uuid4())]) == {order["id"]}
    assert fresh_store.rows_with_local_changes("orders", [order["id"]]) == {order["id"]}
    [c] = fresh_store.conflicts()
    assert (c.id, c.is_open, c.local_values) == (cid, True, {"status": "paid"})
    assert fresh_store.queue_summary().open_conflicts == 1


def test_resolve_conflict_keep_local_queues_an_update_on_the_server_version(fresh_store: LocalStore) -> None:
    order, cid = _open_conflict(fresh_store)
    row = fresh_store.resolve_conflict(cid, "local")
    assert row is not None and row["status"] == "paid" and row["sync_state"] == "pending_update"
    with fresh_store.transaction():
        [e] = fresh_store.outbox.all()
    assert (e.op, e.base_version, e.data) == ("update", 2, {"status": "paid"})
    assert fresh_store.conflicts() == [] and len(fresh_store.conflicts(include_resolved=True)) == 1
    with pytest.raises(NotFoundError):
        fresh_store.resolve_conflict(cid, "local")


def test_resolve_conflict_keep_remote_queues_nothing(fresh_store: LocalStore) -> None:
    order, cid = _open_conflict(fresh_store)
    row = fresh_store.resolve_conflict(cid, "remote")
    assert row is not None and row["status"] == "open" and row["sync_state"] == "synced"
    assert fresh_store.outbox.count() == 0


# -- bases ------------------------------------------------------------------------------------------
def test_bases_set_get_find_and_drop(fresh_store: LocalStore) -> None:
    a, b = server_customer(), server_customer()
    with fresh_store.transaction():
        fresh_store.bases.put("customers", a["id"], a)
        fresh_store.bases.put("customers", b["id"], b)
        fresh_store.bases.put("customers", b["id"], {**b, "version": 2})
        assert fresh_store.bases.get("customers", b["id"])["version"] == 2  # type: ignore[index]
        assert fresh_store.bases.rows_with_base("customers", [a["id"], b["id"], "x"]) == {a["id"], b["id"]}
        fresh_store.bases.drop("customers", [a["id"]])
        fresh_store.bases.put("customers", b["id"], None)
        assert fresh_store.bases.rows_with_base("customers", [a["id"], b["id"]]) == set()


def test_rows_with_conflict_or_base_and_rows_with_local_changes(fresh_store: LocalStore) -> None:
    order, _ = _open_conflict(fresh_store)
    queued = fresh_store.insert("customers", {"name": "Queued"})
    based = server_customer()
    with fresh_store.transaction():
        fresh_store.bases.put("customers", based["id"], based)
    other = str(uuid.uuid4())
    assert fresh_store.rows_with_conflict_or_base("orders", [order["id"], other]) == {order["id"]}
    assert fresh_store.rows_with_conflict_or_base("customers", [queued["id"], based["id"], other]) == {based["id"]}
    assert fresh_store.rows_with_local_changes("customers", [queued["id"], based["id"], other]) == {queued["id"]}
    assert fresh_store.rows_with_local_changes("orders", [order["id"], other]) == {order["id"]}


@pytest.mark.parametrize(("wire", "stored"), [
    ("2026-11-30T14:21:29.123456+00:00", "2026-11-30T14:21:29.123456Z"),
    ("2026-11-30T14:21:29.92526+00:00", "2026-11-30T14:21:29.925260Z"),  # Postgres drops trailing zeros
    ("2026-11-30T14:21:29.9+00:00", "2026-11-30T14:21:29.900000Z"),
    ("2026-11-30T14:21:29+00:00", "2026-11-30T14:21:29.000000Z"),  # a whole second: no fraction at all
    ("2026-11-30T15:21:29.5+01:00", "2026-11-30T14:21:29.500000Z"),  # not UTC: the full conversion
])
def test_a_pulled_timestamp_is_stored_with_six_digits_whatever_postgres_dropped(
        fresh_store: LocalStore, wire: str, stored: str) -> None:
    # One timestamp in ten ends in a zero that Postgres does not write; all of them once took the
    # slow path (a parse and a format per value: a pull of such rows ran at half speed).
    column = fresh_store.table("customers").column("created_at")
    assert column.from_wire(wire) == stored == column.to_stored(wire, from_wire=True)


@pytest.mark.parametrize("path", ["straight", "staged"])
def test_rows_sharing_a_timestamp_each_get_it_and_each_bad_one_is_refused(schema_fixture: dict[str, Any],
                                                                          path: str) -> None:
    """A page converts each distinct timestamp once (the rows of a server transaction share its
    now()): every row still gets its own value, and a value that cannot be read refuses every row
    that holds it, not only the first (a failed conversion is never remembered as a result)."""
    from shopsync import UnreadableRow

    store = LocalStore(":memory:", schema=schema_fixture)
    cols = [c.name for c in store.table("customers").columns]
    shared, bad = "2026-11-30T14:21:29.1+00:00", "not a time"
    rows = {str(uuid.uuid4()): (shared if k % 3 else bad, f"r{k}") for k in range(9)}
    changes = [[k + 1, "customers", "insert", row_id, 1,
                [{"id": row_id, "shop_id": SHOP, "name": name, "version": 1, "created_at": ts,
                  "updated_at": shared}.get(c) for c in cols]]
               for k, (row_id, (ts, name)) in enumerate(rows.items())]
    unreadable: list[UnreadableRow] = []
    with store.transaction():
        if path == "straight":
            store.stage.apply(store, store.schema.tables, changes, unreadable, {"customers": cols})
        else:
            store.stage.add(store.schema.tables, changes, unreadable, {"customers": cols})
            store.stage.merge(store)
    assert sorted(u.row_id for u in unreadable) == sorted(r for r, (ts, _) in rows.items() if ts == bad)
    held = {r["id"]: r for r in store.query("customers")}
    assert set(held) == {r for r, (ts, _) in rows.items() if ts == shared}
    assert {r["created_at"] for r in held.values()} == {"2026-11-30T14:21:29.100000Z"}
    store.close()


def test_a_consistent_page_applied_straight_equals_the_page_staged_then_merged(schema_fixture: dict[str, Any]) -> None:
    """A consistent page with nothing staged goes straight to the tables (no second write through
    the stage): the outcome must be exactly the stage's, including a value of the wrong type (the
    full conversion), a short timestamp fraction, a row with a queued edit on top (its base), and
    an older version than the device holds (left alone)."""
    stores = [LocalStore(":memory:", schema=schema_fixture) for _ in range(2)]
    spec = stores[0].table("customers")
    cols = [c.name for c in spec.columns]
    shop = "aaaaaaaa-0000-4000-8000-000000000000"
    edited, newer = str(uuid.uuid4()), str(uuid.uuid4())

    def wire(row_id: str, name: Any, version: int) -> list[Any]:
        values = {"id": row_id, "shop_id": shop, "name": name, "version": version,
                  "created_at": "2026-11-30T14:21:29.9+00:00", "updated_at": "2026-11-30T14:21:29.123456+00:00"}
        return [values.get(c) for c in cols]

    for store in stores:
        store.set_meta("shop_id", shop)
        store.write_row("customers", {"id": newer, "shop_id": shop, "name": "held at v5", "version": 5})
        store.write_row("customers", {"id": edited, "shop_id": shop, "name": "server v1", "version": 1})
        store.update("customers", edited, {"email": "queued@x.test"})
    changes = [[1, "customers", "insert", r, v, wire(r, n, v)] for r, n, v in [
        (str(uuid.uuid4()), "plain", 1), (str(uuid.uuid4()), 42, 1), (edited, "server v2", 2), (newer, "old v4", 4)]]
    with stores[0].transaction():
        stores[0].stage.apply(stores[0], stores[0].schema.tables, changes, [], {"customers": cols})
    with stores[1].transaction():
        stores[1].stage.add(stores[1].schema.tables, changes, [], {"customers": cols})
        stores[1].stage.merge(stores[1])

    def state(store: LocalStore) -> tuple[Any, ...]:
        conn = store._conn  # noqa: SLF001 (the whole file, as SQLite holds it)
        return tuple(conn.execute(q).fetchall() for q in (
            "select * from customers order by id", "select * from _bases order by 1, 2",
            "select table_name, op, row_id, base_version, data from _outbox order by seq"))

    assert state(stores[0]) == state(stores[1])
    got = {r["name"] for r in stores[0].query("customers")}
    assert {"plain", "42", "held at v5"} <= got and stores[0].get("customers", edited)["email"] == "queued@x.test"
    for store in stores:
        store.close()


# -- table checks and WAL checkpoints -------------------------------------------------------------------
def test_a_synced_table_refuses_a_sync_state_it_does_not_know(fresh_store: LocalStore) -> None:
    """The check is written as equalities (an `in` list is rebuilt at every execution of a
    statement, once per row of a pull page): it still lets every state in and nothing else."""
    import sqlite3

    from shopsync import SYNC_STATES

    row = server_customer()
    for state in SYNC_STATES:
        fresh_store.write_row("customers", {**row, "sync_state": state, "last_error": None})
        assert fresh_store.stored_row("customers", row["id"])["sync_state"] == state  # type: ignore[index]
    with pytest.raises(sqlite3.IntegrityError):
        fresh_store.write_row("customers", {**row, "sync_state": "synced2", "last_error": None})


def test_checkpoints_set_aside_wait_in_the_wal_until_one_is_asked_for(tmp_path: Any,
                                                                       schema_fixture: dict[str, Any]) -> None:
    """While a pull writes, no commit checkpoints the WAL (SQLite would, on the committing
    thread): the rows stay in the WAL, past the automatic threshold, and the database file does
    not grow. The checkpoint asked for, on another thread, copies them into the file. Afterwards
    commits checkpoint as before."""
    import sqlite3
    import threading

    store = LocalStore(tmp_path / "w.db", schema=schema_fixture)
    db, wal = tmp_path / "w.db", tmp_path / "w.db-wal"

    def autocheckpoint() -> int:
        return int(store._conn.execute("pragma wal_autocheckpoint").fetchone()[0])

    assert autocheckpoint() == 1000
    columns = list(server_customer())
    with store.checkpoints_aside() as checkpoint:
        assert autocheckpoint() == 0
        empty = db.stat().st_size
        for _ in range(6):
            with store.transaction():
                store.write_rows("customers", columns, [list(server_customer().values()) for _ in range(4000)])
        assert wal.stat().st_size > 1000 * 4096  # past the automatic threshold
        assert db.stat().st_size == empty  # and nothing checkpointed into the file
        done = threading.Thread(target=checkpoint)
        done.start()
        done.join(30)
        assert db.stat().st_size > empty + 1000 * 4096  # the rows are in the file now
    assert autocheckpoint() == 1000
    store.close()
    # A checkpoint still queued when the file is gone fails; it never makes a new, empty file.
    for f in (db, wal, tmp_path / "w.db-shm"):
        f.unlink(missing_ok=True)
    with pytest.raises(sqlite3.OperationalError):
        store.checkpoint()
    assert not db.exists()
