"""Regressions found by the randomized histories (``make soak``), each replayed deterministically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from tenants import device_client, make_tenant

from shopsync import LocalStore
from shopsync_stack import mint_user_token


def test_a_rejected_edit_of_a_row_in_conflict_leaves_the_row_in_conflict(client_stack: Any, tmp_path: Path) -> None:
    """Soak seed 4178332929: a device queued two edits of an order (total, then status); another
    device moved the order to delivered and changed its total. The first edit came back
    ``conflict`` (manual: kept open), the second ``rejected`` (``invalid_transition``). The
    rejection marked the row ``failed`` although its conflict was still open, so the row no longer
    showed the conflict and resolving it did not restore the server's row."""
    with psycopg.connect(client_stack.db_url, autocommit=True) as conn:
        tenant = make_tenant(conn, "regress")
    token = mint_user_token(client_stack, tenant.staff)
    a1, a2 = (device_client(client_stack, LocalStore(tmp_path / f"{n}.db"), client_stack.api_url, token)
              for n in ("a1", "a2"))
    assert a1.sync().ok
    order = a1.store.insert("orders", {"total": "10.00", "status": "pending"})
    assert a1.sync().ok and a2.sync().ok

    a1.store.update("orders", order["id"], {"status": "delivered", "total": "0.00"})
    a2.store.update("orders", order["id"], {"total": "21.29"})
    a2.store.update("orders", order["id"], {"status": "paid"})
    assert a1.sync().ok
    result = a2.sync()
    assert result.ok and result.conflicts == 1, result
    assert [r.reason for r in result.rejections] == ["invalid_transition"]

    [conflict] = a2.conflicts()
    row = a2.store.get("orders", order["id"])
    assert row["sync_state"] == "conflict", row  # the open conflict stays visible
    assert "invalid_transition" in (row["last_error"] or "")  # and the rejection is reported

    a2.resolve(conflict.id, "remote")
    assert a2.sync().ok and a1.sync().ok
    for dev in (a1, a2):
        got = dev.store.get("orders", order["id"])
        assert (got["status"], str(got["total"]), got["sync_state"]) == ("delivered", "0.00", "synced"), got
    for dev in (a1, a2):
        dev.store.close()
