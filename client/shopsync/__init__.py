"""shopsync: offline-first sync for shop apps on Supabase.

The device side: :class:`LocalStore` (the app's SQLite file, with an outbox) and
:class:`SyncClient` (push the outbox, pull the change log, resolve conflicts, sync in the
background). Errors are :class:`ShopSyncError` subclasses (see :mod:`shopsync.errors`).
"""

from . import errors as _errors
from .client import SyncClient
from .conflicts import Conflict
from .errors import *  # noqa: F403 - the exception hierarchy, listed in errors.__all__
from .live import LiveSubscription
from .outbox import OutboxEntry
from .schema import ColumnSpec, Schema, TableSpec
from .status import PullProgress, Rejection, SyncResult, SyncStatus, UnreadableRow
from .store import SYNC_STATES, LocalStore, QueueSummary
from .transport import SupabaseTransport, Transport
from .watch import Changes

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "LocalStore",
    "QueueSummary",
    "SyncClient",
    "SyncResult",
    "SyncStatus",
    "Conflict",
    "Rejection",
    "UnreadableRow",
    "PullProgress",
    "OutboxEntry",
    "Schema",
    "TableSpec",
    "ColumnSpec",
    "SYNC_STATES",
    "Transport",
    "SupabaseTransport",
    "LiveSubscription",
    "Changes",
    *_errors.__all__,
]
