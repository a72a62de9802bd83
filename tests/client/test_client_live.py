"""Live sync on the device: a sale on one till shows on another within a second (Realtime poke,
coalesced pull), store watchers hear it, the subscription comes back after a stack restart, and
polling carries on while the socket is down. Real websockets, real Postgres, real SQLite files; every
wait is on an event with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shopsync import SyncResult
from shopsync.background import BackgroundSync
from shopsync.watch import ChangeFeed

ROOT = Path(__file__).resolve().parents[2]
WAIT = 15.0


class RowSeen:
    """Set once the store's watcher has reported a row of ``table`` with this id."""

    def __init__(self, store: Any, table: str) -> None:
        self.ids: set[str] = set()
        self.cond = threading.Condition()
        store.watch(table, self._on_change)

    def _on_change(self, ids: frozenset[str]) -> None:
        with self.cond:
            self.ids |= ids
            self.cond.notify_all()

    def wait_for(self, row_id: str, timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: row_id in self.ids, timeout)


def _live_reader(make_device: Any, name: str, **kwargs: Any) -> Any:
    dev = make_device(name, interval=3600, **kwargs)
    dev.client.start()
    assert dev.client.live is not None
    assert dev.client.live.joined.wait(WAIT), dev.client.live.last_error
    assert dev.client.sync_now().wait(WAIT)
    return dev


def test_a_sale_on_one_till_is_readable_on_another_within_a_second(make_device: Any) -> None:
    reader = _live_reader(make_device, "live-reader")
    writer = make_device("live-writer")
    seen = RowSeen(reader.store, "customers")
    assert reader.client.status().live is True

    row = writer.store.insert("customers", {"name": "Sold on till 1"})
    writer.client.sync().raise_for_errors()
    started = time.monotonic()
    assert seen.wait_for(row["id"]), "the reader never pulled the row"
    elapsed = time.monotonic() - started
    assert reader.store.get("customers", row["id"])["name"] == "Sold on till 1"
    assert elapsed < 1.0, f"write-to-visible took {elapsed:.3f} s"  # the interval is an hour: only the poke
    assert reader.client.live.pokes >= 1


def test_a_push_of_many_events_is_one_broadcast_carrying_the_final_cursor(make_device: Any, sql: Any) -> None:
    writer = make_device("live-batch")
    shop = writer.store.get_meta("shop_id")
    before = sql("select count(*) from realtime.messages where topic = %s", (f"shop:{shop}",))[0][0]
    for i in range(5):
        writer.store.insert("customers", {"name": f"batch {i}"})
    assert writer.client.push().raise_for_errors().applied == 5  # one sync_push call, one transaction
    rows = sql("select payload from realtime.messages where topic = %s order by inserted_at desc",
               (f"shop:{shop}",))
    assert len(rows) == before + 1
    last_seq = sql("select last_seq from shopsync.shop_cursor where shop_id = %s", (shop,))[0][0]
    assert rows[0][0]["cursor"] == last_seq


def test_polling_carries_on_while_the_socket_is_down(make_device: Any) -> None:
    class NoRealtime:
        """The transport as it is, but the Realtime endpoint unreachable (a proxy that drops websockets)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.__dict__["inner"], name)

        def realtime_endpoint(self) -> tuple[str, str]:
            _, key = self.inner.realtime_endpoint()
            return "http://127.0.0.1:9", key  # nothing listens on the discard port

    reader = make_device("poll-reader", transport_wrapper=NoRealtime, interval=0.3)
    reader.client.start()
    seen = RowSeen(reader.store, "customers")
    writer = make_device("poll-writer")
    row = writer.store.insert("customers", {"name": "Heard by polling"})
    writer.client.sync().raise_for_errors()
    assert seen.wait_for(row["id"]), "the poll interval did not bring the row"
    status = reader.client.status()
    assert status.live is False and reader.client.live is not None and reader.client.live.failures >= 1


@pytest.mark.local_stack
def test_the_subscription_comes_back_after_a_stack_restart(make_device: Any) -> None:
    reader = _live_reader(make_device, "restart-reader")
    live = reader.client.live
    live.joined.clear()
    live.backoff_cap = 1.0  # the back-off's growth is not under test here: rejoin soon after the stack is back
    env = {**os.environ, "SHOPSYNC_PROJECT_DIR": str(ROOT)}
    for command in ("down", "up"):
        done = subprocess.run([sys.executable, "-m", "shopsync_cli", "stack", command], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert live.joined.wait(WAIT), f"no rejoin after the restart: {live.last_error}"
    assert reader.client.status().live is True
    writer = make_device("restart-writer")
    seen = RowSeen(reader.store, "customers")
    row = writer.store.insert("customers", {"name": "After the restart"})
    writer.client.sync().raise_for_errors()
    assert seen.wait_for(row["id"])


def test_a_revoked_member_stops_hearing_the_shop_after_a_token_refresh(make_device: Any, client_stack: Any,
                                                                         sql: Any) -> None:
    import psycopg
    from tenants import make_tenant

    from shopsync_stack import mint_user_token

    with psycopg.connect(client_stack.db_url, autocommit=True) as conn:
        tenant = make_tenant(conn, "live-revoke")
    tokens = {"now": mint_user_token(client_stack, tenant.staff)}
    reader = make_device("revoked-reader", tenant.staff, access_token=lambda: tokens["now"], interval=3600)
    reader.client.start()
    live = reader.client.live
    assert live.joined.wait(WAIT), live.last_error
    live.dropped.clear()
    sql("update public.shop_members set revoked_at = now() where shop_id = %s and role = 'staff'",
        (tenant.shop_id,))
    tokens["now"] = mint_user_token(client_stack, tenant.staff, expires_in=3599)
    live.check_token()  # the app's auth session refreshed the token
    assert live.dropped.wait(WAIT), "the revoked member's channel stayed open"
    assert reader.client.status().live is False
    assert live.last_error is not None


def test_pokes_coalesce_one_sync_in_flight_and_at_most_one_queued() -> None:
    release = threading.Event()
    runs: list[float] = []
    first_running = threading.Event()

    def slow_sync() -> SyncResult:
        runs.append(time.monotonic())
        first_running.set()
        release.wait(WAIT)
        return SyncResult()

    bg = BackgroundSync(slow_sync, interval=3600)
    bg.start()
    try:
        assert first_running.wait(WAIT)  # the start-up sync is in flight
        for _ in range(20):
            bg.poke()
        release.set()
        done = bg.sync_now()  # queued behind the one poked sync
        assert done.wait(WAIT)
        assert len(runs) in (2, 3)  # start-up, then the 20 pokes as one (the sync_now may join it)
    finally:
        bg.stop(5)


def test_watchers_hear_committed_writes_and_pulled_pages_but_not_rollbacks(make_device: Any) -> None:
    dev = make_device("watch-me")
    heard: list[dict[str, frozenset[str]]] = []
    stop = dev.store.add_change_listener(lambda changes: heard.append(dict(changes)))
    row = dev.store.insert("customers", {"name": "Watched"})
    assert heard[-1] == {"customers": frozenset({row["id"]})}
    with pytest.raises(RuntimeError), dev.store.transaction():
        dev.store.update("customers", row["id"], {"name": "Rolled back"})
        raise RuntimeError("the app gives up")
    assert len(heard) == 1
    dev.client.sync().raise_for_errors()  # the push marks the row synced: its state changed
    assert any(row["id"] in c.get("customers", ()) for c in heard[1:])
    stop()
    count = len(heard)
    dev.store.insert("customers", {"name": "Unwatched"})
    assert len(heard) == count  # nothing more after stop()


def test_a_failing_watcher_does_not_stop_the_others() -> None:
    feed = ChangeFeed()
    got: list[Any] = []
    feed.add_listener(lambda c: (_ for _ in ()).throw(RuntimeError("ui bug")))
    feed.watch("orders", got.append)
    feed.touch("orders", ["o1"])
    feed.emit(feed.take())
    assert got == [frozenset({"o1"})]
