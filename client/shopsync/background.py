"""Background sync: one daemon thread that syncs at start, on an interval, shortly after local writes
(debounced), on demand and when poked by the live subscription; failures back off exponentially
with full jitter. Pokes coalesce: one sync in flight, at most one queued behind it."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from .status import SyncResult

__all__ = ["BackgroundSync"]

log = logging.getLogger("shopsync")


class BackgroundSync:
    """Drives ``sync_fn`` from a thread. ``sync_fn`` must itself refuse to run twice at once."""

    def __init__(self, sync_fn: Callable[[], SyncResult], *, interval: float = 30.0, debounce: float = 1.0,
                 backoff_base: float = 5.0, backoff_cap: float = 300.0,
                 rng: Callable[[], float] = random.random) -> None:
        self._sync_fn = sync_fn
        self.interval = interval
        self.debounce = debounce
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._rng = rng
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._due = 0.0
        self._write_due: float | None = None
        self._first_write: float | None = None
        self._now_waiters: list[threading.Event] = []
        self._backoff_until = 0.0
        self._poked = False
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def backoff_delay(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(failures-1))]."""
        return float(self._rng() * min(self.backoff_cap, self.backoff_base * 2 ** max(failures - 1, 0)))

    def start(self) -> None:
        with self._cond:
            if self.running:
                return
            self._stopping = False
            self._due = time.monotonic()  # sync at start
            self._thread = threading.Thread(target=self._run, name="shopsync-sync", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            for ev in self._now_waiters:
                ev.set()
            self._now_waiters = []
            self._thread = None

    def notify_write(self) -> None:
        """A local write happened: sync after ``debounce`` seconds of quiet (at most 5x that after the first)."""
        with self._cond:
            now = time.monotonic()
            if self._first_write is None:
                self._first_write = now
            self._write_due = min(now + self.debounce, self._first_write + 5 * self.debounce)
            self._cond.notify_all()

    def poke(self) -> None:
        """The server has news (live sync): sync as soon as the running sync, if any, is done.
        Pokes while one is queued add nothing; a back-off after failures still holds."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def sync_now(self) -> threading.Event:
        """Ask for a sync now (ignoring any back-off); the event is set when a sync finished after this."""
        ev = threading.Event()
        with self._cond:
            self._now_waiters.append(ev)
            self._cond.notify_all()
        return ev

    def next_sync_at(self) -> datetime | None:
        with self._cond:
            if not self.running:
                return None
            delay = self._wake_at() - time.monotonic()
        return datetime.now(timezone.utc) + timedelta(seconds=max(delay, 0.0))

    def _wake_at(self) -> float:
        if self._now_waiters:
            return 0.0
        wake = self._due
        if self._poked:
            wake = min(wake, self._backoff_until)
        if self._write_due is not None:
            wake = min(wake, max(self._write_due, self._backoff_until))
        return wake

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    delay = self._wake_at() - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopping:
                    return
                waiters, self._now_waiters = self._now_waiters, []
                self._write_due = None
                self._first_write = None
                self._poked = False
            ok = False
            try:
                ok = self._sync_fn().ok
            except Exception:  # never let the thread die; the status carries the error
                log.exception("shopsync background sync failed")
            with self._cond:
                now = time.monotonic()
                if ok:
                    self.failures = 0
                    self._backoff_until = 0.0
                    self._due = now + self.interval
                else:
                    self.failures += 1
                    self._backoff_until = now + self.backoff_delay(self.failures)
                    self._due = self._backoff_until
            for ev in waiters:
                ev.set()
