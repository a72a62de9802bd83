"""Background sync: a thread that syncs writes made while it runs, backs off, never syncs twice at once."""

from __future__ import annotations

import threading
from typing import Any

from shopsync import SyncResult
from shopsync.background import BackgroundSync


def test_the_background_thread_syncs_writes_made_while_it_runs(make_device: Any, sql: Any) -> None:
    dev = make_device("bg", debounce=0.05, interval=3600)
    pushed = threading.Event()
    dev.client.add_listener(lambda r: pushed.set() if r.pushed else None)
    dev.client.start()
    assert dev.client.sync_now().wait(20)  # the start-up sync is done

    row = dev.store.insert("customers", {"name": "Written while running"})  # debounced sync follows
    assert pushed.wait(20)
    assert sql("select name from public.customers where id = %s", (row["id"],)) == [("Written while running",)]

    # Several app threads keep writing; nothing is lost and syncs never overlap.
    running = 0
    overlap: list[int] = []
    guard = threading.Lock()
    original = dev.client._sync

    def watched(push: bool, pull: bool) -> SyncResult:
        nonlocal running
        with guard:
            running += 1
            overlap.append(running)
        try:
            return original(push, pull)
        finally:
            with guard:
                running -= 1

    dev.client._sync = watched  # type: ignore[method-assign]
    ids: list[str] = []

    def writer(n: int) -> None:
        for i in range(15):
            ids.append(dev.store.insert("customers", {"name": f"t{n}-{i}"})["id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    manual = threading.Thread(target=dev.client.sync)  # a foreground sync racing the thread
    manual.start()
    for t in threads:
        t.join()
    manual.join()
    assert dev.client.sync_now().wait(20)
    dev.client.stop()
    assert max(overlap) == 1
    assert dev.client.status().pending_uploads == 0
    assert sql("select count(*) from public.customers where id = any(%s::uuid[])", (ids,)) == [(45,)]
    assert all(dev.store.get("customers", i)["sync_state"] == "synced" for i in ids)


def test_failures_back_off_exponentially_with_full_jitter() -> None:
    bg = BackgroundSync(lambda: SyncResult(), backoff_base=5, backoff_cap=300, rng=lambda: 1.0)
    assert [bg.backoff_delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    half = BackgroundSync(lambda: SyncResult(), rng=lambda: 0.5)
    assert half.backoff_delay(3) == 10.0


def test_a_failing_sync_backs_off_and_sync_now_still_runs(make_device: Any) -> None:
    from shopsync import TransportError

    class Offline:
        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.online = True

        def __getattr__(self, name: str) -> Any:  # transparent: the rest is the inner transport's
            return getattr(self.__dict__["inner"], name)

        def call(self, fn: str, params: dict[str, Any]) -> Any:
            if not self.online:
                raise TransportError("network is unreachable", reason="network")
            return self.inner.call(fn, params)

    dev = make_device("off", transport_wrapper=Offline, interval=3600, debounce=0.01)
    dev.client.transport.online = False
    dev.store.insert("customers", {"name": "Queued offline"})
    dev.client.start()
    assert dev.client.sync_now().wait(20)
    status = dev.client.status()
    assert dev.client.background.failures >= 1 and status.pending_uploads == 1 and status.last_error
    assert status.next_sync_at is not None
    dev.client.transport.online = True
    assert dev.client.sync_now().wait(20)  # an explicit request skips the back-off
    dev.client.stop()
    assert dev.client.status().pending_uploads == 0 and dev.client.background.failures == 0
