"""The check at the tip hashes the rows written since the last check, not the whole table again:
a till holding thousands of rows paid a full re-hash of a table on every live-sync poke and after
every sale it pushed (about 7 µs a row here). The measured change must leave the check exactly as strong: the
held checksum equals a full re-hash and the server's, and an edit behind the library's back still
forces the full re-hash that finds it. Real HTTP, real SQLite files."""

from __future__ import annotations

import sqlite3
from typing import Any

from conftest_client import whole_table_hashes

SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"


def _new_customers(sql: Any, n: int, name: str) -> list[str]:
    return [str(sql("insert into public.customers (id, shop_id, name) values (gen_random_uuid(), %s, %s)"
                    " returning id", (SHOP_A, name))[0][0]) for _ in range(n)]


def test_a_small_page_moves_the_held_checksum_instead_of_rehashing_the_table(
        make_device: Any, sql: Any, monkeypatch: Any) -> None:
    mine = _new_customers(sql, 2, "incremental")  # rows of this test only (the seed stays as it is)
    dev = make_device("incremental")  # synced and verified once (every table hashed whole)
    whole = whole_table_hashes(monkeypatch)
    _new_customers(sql, 1, "sold elsewhere")
    sql("update public.customers set name = 'renamed elsewhere' where id = %s", (mine[0],))
    sql("update public.customers set deleted_at = now() where id = %s", (mine[1],))
    result = dev.client.sync()
    result.raise_for_errors()
    assert result.pulled == 3 and result.verified is True and not result.repairs
    assert whole == []  # the server's checksums matched the moved one: nothing hashed whole


def test_an_edit_behind_the_librarys_back_still_rehashes_and_repairs(make_device: Any, sql: Any,
                                                                      monkeypatch: Any) -> None:
    dev = make_device("incremental-drift")
    row = dev.store.query("customers", {"sync_state": "synced"}, order_by="id", limit=1)[0]
    conn = sqlite3.connect(str(dev.store.path), timeout=30)
    with conn:
        conn.execute("update customers set name = 'Tampered' where id = ?", (row["id"],))
    conn.close()
    whole = whole_table_hashes(monkeypatch)
    _new_customers(sql, 1, "sold elsewhere")
    result = dev.client.sync()
    result.raise_for_errors()
    assert "customers" in whole  # another connection wrote the file: the held checksum is not trusted
    assert [r.table for r in result.repairs] == ["customers"] and result.verified is True
    assert dev.store.get("customers", row["id"])["name"] == row["name"]


def test_random_small_pages_and_local_edits_never_leave_a_wrong_held_checksum(make_device: Any, sql: Any) -> None:
    """A wrong measured change would show as a mismatch (a repair) at the next check: 30 rounds
    of random server writes (insert, rename, soft delete) with the device's own edits in between,
    each synced and verified against the server without a single repair."""
    import random

    rng = random.Random(1130)
    live = _new_customers(sql, 3, "random")  # rows of this test only (the seed stays as it is)
    dev = make_device("incremental-random")
    for k in range(30):
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(["insert", "rename", "rename", "delete"])
            if op == "insert" or len(live) < 3:
                live += _new_customers(sql, 1, f"r{k}")
            elif op == "rename":
                sql("update public.customers set name = %s where id = %s", (f"renamed {k}", rng.choice(live)))
            else:
                sql("update public.customers set deleted_at = now() where id = %s", (live.pop(rng.randrange(len(live))),))
        if rng.random() < 0.3:  # the device's own edit: pushed, then pulled back
            dev.store.update("customers", rng.choice(live), {"notes": f"till note {k}"})
        result = dev.client.sync()
        result.raise_for_errors()
        assert result.verified is True and not result.repairs, (k, result.repairs)


def test_a_tills_own_sale_and_edits_are_checked_without_rehashing_the_table(make_device: Any, sql: Any,
                                                                            monkeypatch: Any) -> None:
    """The writer's side: an insert, an update and a delete queued, pushed, answered and pulled
    back; the check counts them from what each row counted for before its first write."""
    mine = _new_customers(sql, 2, "writer")
    dev = make_device("incremental-writer")
    whole = whole_table_hashes(monkeypatch)
    dev.store.insert("customers", {"name": "sold here"})
    dev.store.update("customers", mine[0], {"notes": "edited here"})
    dev.store.delete("customers", mine[1])
    result = dev.client.sync()
    result.raise_for_errors()
    assert result.pushed == 3 and result.verified is True and not result.repairs
    assert whole == []
    # a queued edit left unpushed is named to the server and the check still holds
    dev.store.update("customers", mine[0], {"notes": "queued only"})
    result = dev.client.pull()
    result.raise_for_errors()
    assert result.verified is True and not result.repairs and whole == []
