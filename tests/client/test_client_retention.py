"""Retention on the server (purged tombstones, a raised floor) seen from devices."""

from __future__ import annotations

from typing import Any

from conftest_client import SHOP_B, local_rows, shop_rows


def test_a_new_device_pages_through_a_log_whose_floor_was_raised(make_device: Any, sql: Any) -> None:
    writer = make_device("w", "staff@shop-b.test")
    temp = writer.store.insert("customers", {"name": "Soon purged"})
    for i in range(6):
        writer.store.insert("customers", {"name": f"Stays {i}"})
    writer.client.sync().raise_for_errors()
    writer.store.delete("customers", temp["id"])
    writer.client.sync().raise_for_errors()
    sql("select shopsync.run_retention(p_tombstone_keep => interval '0 seconds')")
    [(last, floor)] = sql("select last_seq, floor_seq from shopsync.shop_cursor where shop_id = %s", (SHOP_B,))
    assert floor == last  # the purged tombstone was the newest entry

    fresh = make_device("n", "staff@shop-b.test", page_size=3, sync=False)
    result = fresh.client.sync()
    assert result.ok and result.resets == 0, result
    assert fresh.store.cursor == last
    assert local_rows(fresh.store) == shop_rows(sql, SHOP_B, fresh.store)
    assert fresh.store.get("customers", temp["id"], include_deleted=True) is None

    # A device that was behind the raised floor starts over once, keeping its queued work.
    behind = make_device("b", "staff@shop-b.test", page_size=3)
    writer.store.insert("customers", {"name": "After the purge"})
    writer.client.sync().raise_for_errors()
    sql("update shopsync.shop_cursor set floor_seq = last_seq where shop_id = %s", (SHOP_B,))
    queued = behind.store.insert("customers", {"name": "Queued behind"})
    assert behind.client.pull().resets == 1
    assert behind.store.get("customers", queued["id"])["sync_state"] == "pending_create"
    assert behind.client.sync().ok
    assert local_rows(behind.store) == shop_rows(sql, SHOP_B, behind.store)
