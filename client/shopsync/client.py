"""SyncClient: moves the outbox up (``sync_push``, :mod:`shopsync.push`) and the change log down
(``sync_pull``, :mod:`shopsync.pull`); registration, schema, conflicts, status and background sync.

Crash safety: each push batch's results, and each pull page with its new cursor, are applied in
one SQLite transaction. A push whose answer was lost is sent again with the same event ids and
comes back ``duplicate``; a pull page that was not committed is fetched again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .background import BackgroundSync
from .conflicts import Conflict
from .errors import DeviceError, ForbiddenError, LicenceError, RateLimitedError, ShopSyncError
from .live import LiveSubscription
from .pull import Puller
from .push import push_all, rate_window_end
from .schema import utc_now_iso
from .status import PullProgress, SyncResult, SyncStatus
from .store import LocalStore
from .transport import SupabaseTransport, TokenSource, Transport
from .verify import Verifier

__all__ = ["SyncClient"]

Keep = str | dict[str, Any]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class SyncClient:
    """Syncs one :class:`LocalStore` with the server.

    Build it from a supabase-py client (``SyncClient(store, client)``; the client's auth session
    supplies tokens, or pass ``access_token=`` a token or a callable returning a fresh one), from
    ``url=``, ``anon_key=`` and ``access_token=``, or from any ``transport=``.
    """

    def __init__(
        self,
        store: LocalStore,
        client: Any = None,
        *,
        url: str | None = None,
        anon_key: str | None = None,
        access_token: TokenSource | None = None,
        transport: Transport | None = None,
        device_name: str | None = None,
        platform: str | None = "python",
        batch_size: int = 500,
        page_size: int = 2000,
        interval: float = 30.0,
        debounce: float = 1.0,
        backoff_base: float = 5.0,
        backoff_cap: float = 300.0,
        verify: bool = True,
        live: bool = True,
    ) -> None:
        if transport is None:
            if client is not None:
                transport = SupabaseTransport(client, access_token)
            elif url and anon_key and access_token:
                transport = SupabaseTransport.from_url(url, anon_key, access_token)
            else:
                raise ValueError("SyncClient needs a supabase client, url + anon_key + access_token, or a transport")
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be 1..1000 (the server takes at most 1000 events a call)")
        self.store = store
        self.transport = transport
        use_device_secret = getattr(transport, "use_device_secret", None)
        if callable(use_device_secret):  # a transport that sends the secret (SupabaseTransport)
            use_device_secret(lambda: store.device_secret)
        self.device_name = device_name or f"shopsync-{store.device_prefix}"
        self.platform = platform
        self.batch_size = batch_size
        self.page_size = page_size
        #: Check the synced rows against the server's checksums when a sync reaches the tip (verify.py).
        self.verify = verify
        self._verify_cache: dict[str, Any] = {}
        self._tip_checksums: dict[str, Any] | None = None  # what the last pull's tip page carried
        self._sync_lock = threading.Lock()
        self._is_syncing = False
        self._schema_checked = False
        self._listeners: list[Callable[[SyncResult], None]] = []
        self._pull_listeners: list[Callable[[PullProgress], None]] = []
        #: Test hook: called inside a pull page's transaction after its rows, before its cursor.
        self.pull_page_hook: Callable[[dict[str, Any]], None] | None = None
        self._background = BackgroundSync(self.sync, interval=interval, debounce=debounce,
                                          backoff_base=backoff_base, backoff_cap=backoff_cap)
        #: Live sync (:mod:`shopsync.live`): subscribed by :meth:`start` when ``live`` and the transport
        #: can tell the project URL and the user's token (SupabaseTransport).
        self.live_enabled = live
        self.live: LiveSubscription | None = None

    # -- registration and schema ------------------------------------------------------------------
    def register(self) -> dict[str, Any]:
        """Register this device in the user's shop (idempotent) and load the synced schema."""
        info = self.transport.call("sync_register_device", {
            "p_device_id": self.store.device_id, "p_name": self.device_name, "p_platform": self.platform})
        self.store.record_registration(info)
        self.refresh_schema()
        return {k: v for k, v in dict(info).items() if k != "device_secret"}

    def rotate_secret(self) -> None:
        """Replace this device's secret with a new one (``sync_rotate_device_secret``).

        The old secret stays valid on the server until the new one is first used, so an answer
        lost on the way changes nothing: the device still holds a working secret and may rotate
        again. Runs under the sync lock so no push or pull sends a secret half-way.
        """
        with self._sync_lock:
            info = self.transport.call("sync_rotate_device_secret", {"p_device_id": self.store.device_id})
            secret = info.get("device_secret") if isinstance(info, dict) else None
            if not isinstance(secret, str) or not secret:
                raise ShopSyncError("sync_rotate_device_secret answered without a device_secret",
                                    reason="invalid_response")
            self.store.set_device_secret(secret)

    def refresh_schema(self) -> bool:
        """Fetch ``sync_schema()`` and extend the local tables; True when anything changed."""
        changed = self.store.apply_schema(self.transport.call("sync_schema", {}))
        self._schema_checked = True
        return changed

    # -- sync ---------------------------------------------------------------------------------------
    def add_listener(self, callback: Callable[[SyncResult], None]) -> None:
        """Call ``callback(result)`` after every sync (from the thread that ran it)."""
        self._listeners.append(callback)

    def add_pull_listener(self, callback: Callable[[PullProgress], None]) -> None:
        """Call ``callback(progress)`` after every committed pull page (a progress bar's feed)."""
        self._pull_listeners.append(callback)

    def remove_pull_listener(self, callback: Callable[[PullProgress], None]) -> None:
        if callback in self._pull_listeners:
            self._pull_listeners.remove(callback)

    def sync(self) -> SyncResult:
        """Push the outbox in batches, then pull pages until the server has no more.

        Never two at once: a second caller waits for the running sync, then runs its own.
        Whole-call failures do not raise; they are in ``result.errors`` (see ``raise_for_errors``).
        """
        return self._run(push=True, pull=True)

    def push(self) -> SyncResult:
        """Only push the outbox (no pull)."""
        return self._run(push=True, pull=False)

    def pull(self) -> SyncResult:
        """Only pull (pending local edits stay on top of the pulled rows)."""
        return self._run(push=False, pull=True)

    def _run(self, *, push: bool, pull: bool) -> SyncResult:
        with self._sync_lock:
            self._is_syncing = True
            try:
                result = self._sync(push, pull)
            finally:
                self._is_syncing = False
        for cb in list(self._listeners):
            cb(result)
        return result

    def _sync(self, push: bool, pull: bool) -> SyncResult:
        result = SyncResult()
        for attempt in (1, 2):
            try:
                if self.store.get_meta("registered_at") is None or self.store.device_secret is None:
                    self.register()  # also claims a secret for a device registered before credentials
                elif not self._schema_checked or not self.store.has_schema:
                    self.refresh_schema()
            except ShopSyncError as exc:
                return self._finish(result, exc)
            push_error = self._push_all(result) if push else None
            if pull and (push_error is None or isinstance(push_error, (LicenceError, RateLimitedError, ForbiddenError))):
                self._pull_all(result)  # a refused push does not stop pulls
                if self.verify and not result.errors:
                    self._verify(result)
            forgotten = [e for e in result.errors if isinstance(e, DeviceError)
                         and e.reason in ("device_not_registered", "device_credential_unclaimed")]
            if attempt == 1 and forgotten:
                # The server does not know this device any more (restored from a backup taken before it
                # registered, or a reset development stack): register again (idempotent; refused if
                # revoked or over the licence) and run once more. A cursor the server never handed
                # out then comes back cursor_ahead and the pull resets, keeping queued events.
                # device_credential_unclaimed (an owner reset the credential): registering again
                # issues a new secret when the signed-in member is an owner or staff.
                result.errors = [e for e in result.errors if e not in forgotten]
                self.store.set_meta("registered_at", None)
                continue
            break
        return self._finish(result, None)

    def _finish(self, result: SyncResult, error: ShopSyncError | None) -> SyncResult:
        if error is not None:
            result.errors.append(error)
        now = utc_now_iso()
        with self.store.transaction():
            if result.ok:
                self.store.set_meta("last_sync", now)
                self.store.set_meta("last_error", None)
                self.store.set_meta("licence_state", "ok")
            else:
                self.store.set_meta("last_error", str(result.errors[-1]))
            for exc in result.errors:
                if isinstance(exc, LicenceError):
                    self.store.set_meta("licence_state", exc.reason or "licence_expired")
                if isinstance(exc, RateLimitedError) and exc.reason != "push_in_progress":
                    self.store.set_meta("rate_limited_until", rate_window_end(exc.hint))
        return result

    # -- push and pull (push.py, pull.py) -----------------------------------------------------------
    def _push_all(self, result: SyncResult) -> ShopSyncError | None:
        return push_all(self.store, self.transport, self.batch_size, result)

    def _pull_all(self, result: SyncResult) -> None:
        puller = Puller(self.store, self.transport, self.page_size, refresh_schema=self.refresh_schema,
                        reset_local=self.reset_local, page_hook=self.pull_page_hook,
                        listeners=self._pull_listeners)
        puller.pull_all(result)
        self._tip_checksums = puller.tip_checksums

    def _verify(self, result: SyncResult) -> None:
        def pull_again() -> bool:
            errors = len(result.errors)
            self._pull_all(result)
            return len(result.errors) == errors

        def tip_checksums() -> dict[str, Any] | None:
            answer, self._tip_checksums = self._tip_checksums, None
            return answer

        Verifier(self.store, self.transport, pull_again, refresh_schema=self.refresh_schema,
                 cache=self._verify_cache, tip_checksums=tip_checksums).verify(result)

    def reset_local(self) -> None:
        """Drop synced rows, keep every pending outbox entry (and rows in conflict), pull from zero."""
        self.store.forget_synced_rows()

    # -- conflicts ----------------------------------------------------------------------------------
    def conflicts(self, include_resolved: bool = False) -> list[Conflict]:
        """Open conflicts (and, with ``include_resolved``, the resolved and auto-resolved log)."""
        return self.store.conflicts(include_resolved)

    def resolve(self, conflict_id: int, keep: Keep = "local") -> dict[str, Any] | None:
        """Settle an open conflict on top of the server's version and queue the result.

        ``keep="remote"``: the server's row stands, nothing is queued. ``keep="local"``: this
        device's values are queued as an update based on the server version. A dict: those values
        (app form) are queued the same way. Returns the row.
        """
        return self.store.resolve_conflict(conflict_id, keep)

    # -- status -------------------------------------------------------------------------------------
    def status(self) -> SyncStatus:
        store = self.store
        queue = store.queue_summary()
        oldest = queue.oldest_pending_at
        now = datetime.now(timezone.utc)
        last_sync = store.get_meta("last_sync")
        limited = store.get_meta("rate_limited_until")
        limited_until = datetime.fromisoformat(limited) if limited else None
        return SyncStatus(
            last_sync=datetime.fromisoformat(last_sync.replace("Z", "+00:00")) if last_sync else None,
            pending_uploads=queue.pending,
            pending_downloads=int(store.get_meta("remaining", "0") or 0),
            is_syncing=self._is_syncing,
            last_error=store.get_meta("last_error"),
            pending_by_table=queue.pending_by_table,
            oldest_pending_age=(now - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).total_seconds()
            if oldest else None,
            open_conflicts=queue.open_conflicts,
            licence_state=store.get_meta("licence_state", "ok") or "ok",
            rate_limited_until=limited_until if limited_until and limited_until > now else None,
            next_sync_at=self._background.next_sync_at(),
            cursor=store.cursor,
            last_verified_at=_when(store.get_meta("verified_at")),
            repairs=int(store.get_meta("repairs", "0") or 0),
            last_repair_at=_when(store.get_meta("last_repair_at")),
            live=self.live is not None and self.live.is_up,
        )

    # -- background -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Sync in a background thread: now, every ``interval`` s, shortly after writes, on ``sync_now()``,
        and (live sync) when the server broadcasts that the shop changed."""
        self.store.add_write_listener(self._background.notify_write)
        self._background.start()
        if self.live_enabled and self.live is None:
            self.live = self._live_subscription()
        if self.live is not None:
            self.live.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the live subscription and the background thread (waits for a running sync to finish)."""
        if self.live is not None:
            self.live.stop()
        self.store.remove_write_listener(self._background.notify_write)
        self._background.stop(timeout)

    def _live_subscription(self) -> LiveSubscription | None:
        endpoint = getattr(self.transport, "realtime_endpoint", None)
        token = getattr(self.transport, "access_token", None)
        where = endpoint() if callable(endpoint) else None
        if where is None or not callable(token):
            return None  # a transport without a project URL (a test double): polling only
        return LiveSubscription(where[0], where[1], token, lambda: self.store.get_meta("shop_id"),
                                lambda: self.store.cursor, self._background.poke)

    def sync_now(self) -> threading.Event:
        """Ask the background thread for a sync now; the event is set once one has finished.
        Without a running thread, syncs in the calling thread."""
        if not self._background.running:
            self.sync()
            done = threading.Event()
            done.set()
            return done
        return self._background.sync_now()

    @property
    def background(self) -> BackgroundSync:
        return self._background
