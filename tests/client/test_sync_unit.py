"""Push and pull against a scripted transport: the sync engine's bookkeeping in the store, with
no Postgres and no network (the fixture schema document; a fresh in-memory store)."""

from __future__ import annotations

import uuid
from typing import Any

from shopsync import LocalStore, ProtocolError, SyncClient
from shopsync.pull import apply_changes, needs_schema

SHOP = "aaaaaaaa-0000-4000-8000-000000000000"


class Scripted:
    """A Transport answering each RPC from a function; records the calls."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.server: dict[str, dict[str, Any]] = {}  # row_id -> wire row (customers)
        self.log: list[dict[str, Any]] = []

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        self.calls.append((fn, params))
        if fn == "sync_register_device":
            return {"shop_id": SHOP, "role": "staff", "registered_at": "2026-01-01T00:00:00Z"}
        if fn == "sync_schema":
            return self.schema
        if fn == "sync_push":
            results = []
            for e in params["p_events"]:
                old = self.server.get(e["row_id"], {})
                version = int(old.get("version") or 0) + 1
                row = {**old, **e["data"], "id": e["row_id"], "shop_id": SHOP, "version": version}
                self.server[e["row_id"]] = row
                self.log.append({"table": e["table"], "row_id": e["row_id"], "row": row})
                results.append({"event_id": e["event_id"], "status": "applied", "version": version})
            return {"results": results}
        if fn == "sync_pull_v2":  # v1-shaped entries: the client reads both
            cursor = int(params["p_cursor"])
            page = self.log[cursor:cursor + int(params["p_limit"])]
            end = cursor + len(page)
            return {"changes": page, "cursor": end, "has_more": end < len(self.log),
                    "remaining": len(self.log) - end, "consistent": True, "server_time": "2026-01-01T00:00:00Z"}
        if fn == "sync_checksums":  # a server from before verified sync: the check is skipped
            raise ProtocolError("Could not find the function public.sync_checksums", code="PGRST202")
        raise AssertionError(f"unexpected call {fn}")


def test_push_then_pull_through_the_store(fresh_store: LocalStore, schema_fixture: dict[str, Any]) -> None:
    transport = Scripted(schema_fixture)
    client = SyncClient(fresh_store, transport=transport, page_size=2)
    rows = [fresh_store.insert("customers", {"name": f"c{i}"}) for i in range(5)]
    fresh_store.update("customers", rows[0]["id"], {"name": "c0 again"})
    result = client.sync()
    assert result.ok and result.pushed == 6 and result.applied == 6 and result.pulled == 6
    assert fresh_store.outbox.count() == 0 and fresh_store.cursor == 6
    for r in rows:
        got = fresh_store.get("customers", r["id"])
        assert got is not None and got["sync_state"] == "synced"
    assert fresh_store.get("customers", rows[0]["id"])["version"] == 2  # type: ignore[index]
    status = client.status()
    assert (status.pending_uploads, status.open_conflicts, status.cursor) == (0, 0, 6)


def test_a_pulled_page_is_written_set_wise_and_a_queued_row_keeps_its_values(fresh_store: LocalStore) -> None:
    mine = fresh_store.insert("customers", {"name": "Local"})
    other = str(uuid.uuid4())
    wire = {"id": other, "shop_id": SHOP, "name": "Pulled", "version": 3}
    changes = [{"table": "customers", "row_id": other, "row": {**wire, "version": 2}},
               {"table": "customers", "row_id": other, "row": wire},
               {"table": "customers", "row_id": mine["id"], "row": {"id": mine["id"], "shop_id": SHOP,
                                                                    "name": "Server", "version": 1}}]
    assert not needs_schema(fresh_store.schema, changes)
    assert needs_schema(fresh_store.schema, [{"table": "nope", "row": {}}])
    with fresh_store.transaction():
        apply_changes(fresh_store, changes)
    assert fresh_store.get("customers", other)["version"] == 3  # type: ignore[index]
    kept = fresh_store.get("customers", mine["id"])
    assert kept is not None and kept["name"] == "Local" and kept["sync_state"] == "pending_create"
    assert fresh_store.bases.get("customers", mine["id"]) is not None


def test_a_columnar_page_with_a_value_of_the_wrong_type_takes_the_full_conversion(fresh_store: LocalStore) -> None:
    """Text and integer values are bound as they come and checked by SQLite; a page it refuses is
    converted row by row: a number in a text column is stored as text, a row this client cannot
    read is reported once and skipped, the rest of the page applies."""
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    columns = {"customers": ["id", "name", "shop_id", "version", "created_at"]}
    ts = "2026-11-30T10:00:00.5+00:00"
    changes = [[1, "customers", "insert", a, 1, [a, "Ann", SHOP, 1, ts]],
               [2, "customers", "insert", b, 1, [b, 42, SHOP, 1, ts]],
               [3, "customers", "insert", c, 1, [c, "Cy", SHOP, "one", ts]]]
    unreadable: list[Any] = []
    apply_changes(fresh_store, changes, unreadable, columns)
    assert fresh_store.get("customers", a)["name"] == "Ann"  # type: ignore[index]
    got = fresh_store.get("customers", b)
    assert got is not None and got["name"] == "42" and got["created_at"] == "2026-11-30T10:00:00.500000Z"
    assert fresh_store.get("customers", c) is None
    assert [u.row_id for u in unreadable] == [c]


class ServerBeforeV2(Scripted):
    """A server from before sync_pull_v2 (a rolling upgrade): only sync_pull answers."""

    asked_v2 = 0

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        if fn == "sync_pull_v2":
            self.asked_v2 += 1
            raise ProtocolError("Could not find the function public.sync_pull_v2", status=404, code="PGRST202")
        if fn == "sync_pull":
            page = super().call("sync_pull_v2", params)
            del page["consistent"]
            return page
        return super().call(fn, params)


def test_a_client_pulls_with_v1_from_a_server_without_sync_pull_v2(
        fresh_store: LocalStore, schema_fixture: dict[str, Any]) -> None:
    transport = ServerBeforeV2(schema_fixture)
    client = SyncClient(fresh_store, transport=transport, page_size=2)
    for i in range(3):
        fresh_store.insert("customers", {"name": f"c{i}"})
    result = client.sync()
    assert result.ok and result.pulled == 3 and fresh_store.cursor == 3
    assert transport.asked_v2 == 1  # asked once, then v1 for every page
