"""The client keeps its device's secret in the store, survives rotation and a restart, and claims a
secret for a device registered before device credentials (issue 12, item 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shopsync import LocalStore


def test_client_survives_rotation_and_restart(make_device: Any, sql: Any, client_stack: Any,
                                             token_for: Callable[[str], str]) -> None:
    import supabase

    from shopsync import SyncClient

    a1 = make_device("a1")
    first = a1.store.device_secret
    assert first and len(first) == 43
    stored = sql("select encode(secret_hash, 'hex') from shopsync.device_credentials where device_id = %s",
                 (a1.store.device_id,))
    assert stored and stored[0][0] != first, "the server keeps a hash, not the secret"

    a1.client.rotate_secret()
    rotated = a1.store.device_secret
    assert rotated and rotated != first
    a1.store.insert("customers", {"name": "after rotation"})
    a1.client.sync().raise_for_errors()

    # Restart: a new store object on the same file and a new client; the secret is still there.
    path, device_id = a1.store.path, a1.store.device_id
    a1.client.stop(timeout=10)
    a1.store.close()
    store = LocalStore(path)
    try:
        assert (store.device_id, store.device_secret) == (device_id, rotated)
        sb = supabase.create_client(client_stack.api_url, client_stack.anon_key)
        client = SyncClient(store, sb, access_token=lambda: token_for("staff@shop-a.test"), device_name="a1")
        store.insert("customers", {"name": "after restart"})
        client.sync().raise_for_errors()
        assert client.status().pending_uploads == 0
        # A second rotation after the restart works too, and the old secret is gone once used.
        client.rotate_secret()
        client.sync().raise_for_errors()
        assert store.device_secret not in (first, rotated)
    finally:
        store.close()


def test_a_device_without_a_secret_claims_one_on_its_next_sync(make_device: Any, sql: Any) -> None:
    """A till registered before device credentials (no credential row, no secret in its store):
    its next sync registers again, claims a secret and syncs on with its queued edits."""
    a2 = make_device("a2")
    sql("delete from shopsync.device_credentials where device_id = %s", (a2.store.device_id,))
    a2.store.set_device_secret(None)
    row = a2.store.insert("customers", {"name": "queued before the claim"})
    a2.client.sync().raise_for_errors()
    assert a2.store.device_secret
    assert sql("select name from public.customers where id = %s", (row["id"],)) == [("queued before the claim",)]
