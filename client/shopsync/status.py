"""What a sync did (:class:`SyncResult`) and where the device stands (:class:`SyncStatus`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .errors import ShopSyncError

__all__ = ["SyncResult", "SyncStatus", "Rejection", "PullProgress", "UnreadableRow", "Repair"]


@dataclass(frozen=True)
class Rejection:
    """An event the server refused: its row is ``failed`` and the event left the outbox."""

    event_id: str
    table: str
    row_id: str
    op: str
    reason: str
    message: str | None


@dataclass(frozen=True)
class UnreadableRow:
    """A server row this client could not read (a value outside what it can hold, such as a BC
    timestamp stored before the server refused them). The row was skipped: the rest of its page
    applied and the cursor moved past it. ``seq`` is its change-log entry (None for the server row of
    a push conflict); the row comes again when the server next changes it, or on a full re-pull."""

    table: str
    row_id: str
    seq: int | None
    message: str


@dataclass(frozen=True)
class Repair:
    """A table whose checksum differed from the server's at the tip and was re-fetched: how many
    rows changed, and the live rows the device and the server counted before the repair."""

    table: str
    rows_fixed: int
    device_count: int
    server_count: int


@dataclass(frozen=True)
class PullProgress:
    """After each committed pull page: changes pulled so far in this sync, what the server said is
    still ahead (``remaining``, an upper bound), the cursor now stored (the state the device shows)
    and ``staged``: rows pulled but not shown yet, because the server's state they belong to is not
    complete on the device yet (a transaction bigger than a page, an initial sync after retention)."""

    pulled: int
    remaining: int
    cursor: int
    staged: int = 0

    @property
    def total(self) -> int:
        return self.pulled + self.remaining


@dataclass
class SyncResult:
    """The outcome of one :meth:`SyncClient.sync`.

    Counts are per event (``pushed`` = events the server answered) and per pulled change.
    ``errors`` holds whole-call failures (the outbox was left as it was); ``ok`` is True without.
    ``unreadable`` lists server rows this client could not read and skipped (see
    :class:`UnreadableRow`); they do not make the sync fail. ``verified`` says whether the
    device's synced rows were checked against the server's checksums at the tip (True: equal, after
    any ``repairs``; False: not equal; None: not checked this time).
    """

    pushed: int = 0
    applied: int = 0
    merged: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    pulled: int = 0
    resets: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    errors: list[ShopSyncError] = field(default_factory=list)
    unreadable: list[UnreadableRow] = field(default_factory=list)
    verified: bool | None = None
    repairs: list[Repair] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> SyncResult:
        """Raise the first whole-call failure, if any (like ``httpx.Response.raise_for_status``)."""
        if self.errors:
            raise self.errors[0]
        return self


@dataclass(frozen=True)
class SyncStatus:
    """Where the device stands; cheap to call from a UI thread.

    * ``last_sync``: when the last fully successful sync finished (UTC), or None;
    * ``pending_uploads``: events in the outbox; ``pending_by_table`` splits them per table;
    * ``pending_downloads``: changes the server still had after the last pull (its ``remaining``);
    * ``is_syncing``: a sync is running now;
    * ``last_error``: the last whole-call failure, cleared by a successful sync;
    * ``oldest_pending_age``: seconds since the oldest queued event was made, or None;
    * ``open_conflicts``: conflicts waiting for :meth:`SyncClient.resolve`;
    * ``licence_state``: ``ok``, ``licence_expired`` or ``device_limit_reached`` (pushes refused,
      pulls continue); ``rate_limited_until``: when a 429 back-off ends, or None;
    * ``next_sync_at``: when the background thread syncs next (None when it is not running);
    * ``last_verified_at``: when the synced rows last matched the server's checksums, or None;
      ``repairs``: tables repaired on this device so far, ``last_repair_at`` the last one's time;
    * ``live``: the live subscription (Supabase Realtime) is joined; False while it is down or off,
      when the poll interval is what brings other devices' changes.
    """

    last_sync: datetime | None
    pending_uploads: int
    pending_downloads: int
    is_syncing: bool
    last_error: str | None
    pending_by_table: dict[str, int] = field(default_factory=dict)
    oldest_pending_age: float | None = None
    open_conflicts: int = 0
    licence_state: str = "ok"
    rate_limited_until: datetime | None = None
    next_sync_at: datetime | None = None
    cursor: int = 0
    last_verified_at: datetime | None = None
    repairs: int = 0
    last_repair_at: datetime | None = None
    live: bool = False
