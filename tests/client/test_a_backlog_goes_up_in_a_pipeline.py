"""A backlog is pushed in a pipeline (client/shopsync/push.py): the next call goes out before the
previous answer is applied on the device. The threats: two calls of one device on the server at
once (out of order, or refused ``push_in_progress``), an answer applied out of order, and a device
that fails between a call and the applying of its answer losing or doubling a write."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest

import shopsync.push as push_module


class Recording:
    """The real transport, noting when each push call starts and ends."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        if fn != "sync_push":
            return self.inner.call(fn, params)
        with self._lock:
            self._calls += 1
            n = self._calls
            self.log.append(("call", n))
        try:
            return self.inner.call(fn, params)
        finally:
            with self._lock:
                self.log.append(("answer", n))


def test_calls_go_one_at_a_time_in_order_and_answers_apply_in_order(make_device: Any, sql: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    a1 = make_device("a1", batch_size=3, transport_wrapper=Recording)
    transport = a1.client.transport
    # One row's insert, update and delete fall in three different batches.
    row = a1.store.insert("customers", {"name": "Spans the batches"})
    others = [a1.store.insert("customers", {"name": f"Other {i}"}) for i in range(2)]
    a1.store.update("customers", row["id"], {"phone": "1"})
    others += [a1.store.insert("customers", {"name": f"Other {i}"}) for i in range(2, 4)]
    a1.store.update("customers", row["id"], {"phone": "2"})
    others += [a1.store.insert("customers", {"name": f"Other {i}"}) for i in range(4, 6)]
    a1.store.delete("customers", row["id"])
    queued = [e.event_id for e in a1.store.outbox.all()]
    assert len(queued) == 10

    applied: list[list[str]] = []
    real_apply = push_module._apply_results

    def noting(store: Any, entries: Any, results: Any, result: Any) -> None:
        with transport._lock:
            transport.log.append(("apply", len(applied) + 1))
        applied.append([e.event_id for e in entries])
        real_apply(store, entries, results, result)

    monkeypatch.setattr(push_module, "_apply_results", noting)
    r = a1.client.push()
    assert r.ok and (r.pushed, r.applied + r.merged, r.duplicates, r.conflicts) == (10, 10, 0, 0), r
    # The answers were applied in outbox order, a batch each.
    assert applied == [queued[0:3], queued[3:6], queued[6:9], queued[9:10]]
    log = transport.log
    calls = [n for kind, n in log if kind == "call"]
    assert calls == [1, 2, 3, 4]
    for n in (1, 2, 3):
        # The server never has two calls of the device at once: call n+1 leaves after answer n.
        # (That it leaves before answer n is applied is shown by the next test, without a race.)
        assert log.index(("answer", n)) < log.index(("call", n + 1))
    assert sql("select count(*) from shopsync.change_log where row_id = %s", (row["id"],)) == [(4,)]
    assert sql("select version, deleted_at is not null from public.customers where id = %s",
               (row["id"],)) == [(4, True)]
    assert all(a1.store.get("customers", o["id"])["sync_state"] == "synced" for o in others)
    assert a1.client.status().pending_uploads == 0


def test_a_device_failing_between_a_call_and_its_answer_loses_and_doubles_nothing(
        make_device: Any, sql: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a1 = make_device("a1", batch_size=3)
    rows = [a1.store.insert("customers", {"name": f"Backlog {i}"}) for i in range(9)]
    real_apply = push_module._apply_results
    seen = [0]

    def disk_full_on_the_second(store: Any, entries: Any, results: Any, result: Any) -> None:
        seen[0] += 1
        if seen[0] == 2:  # the fault, on purpose: the file cannot take the second answer
            raise sqlite3.OperationalError("database or disk is full")
        real_apply(store, entries, results, result)

    monkeypatch.setattr(push_module, "_apply_results", disk_full_on_the_second)
    with pytest.raises(sqlite3.OperationalError):
        a1.client.push()
    # The third call was already on its way when the second answer failed to apply, and it
    # finished before the push gave up: the server holds all nine rows, once each.
    ids = [x["id"] for x in rows]
    assert sql("select count(*) from public.customers where id = any(%s::uuid[])", (ids,)) == [(9,)]
    assert a1.client.status().pending_uploads == 6  # the first batch's answer was applied
    monkeypatch.setattr(push_module, "_apply_results", real_apply)
    r = a1.client.push()
    assert r.ok and (r.pushed, r.duplicates, r.applied) == (6, 6, 0), r
    assert sql("select count(*) from shopsync.change_log where row_id = any(%s::uuid[])", (ids,)) == [(9,)]
    assert all(a1.store.get("customers", i)["sync_state"] == "synced" for i in ids)
    assert all(a1.store.get("customers", i)["version"] == 1 for i in ids)
    assert a1.client.status().pending_uploads == 0
