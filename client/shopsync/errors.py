"""The client's exceptions, mapped from the server's HTTP status and machine-readable reason.

Hierarchy::

    ShopSyncError                 every error the client raises
    ├── TransportError            network failure, timeout, 5xx: retried later (retryable)
    ├── RateLimitedError          429 rate_limited / push_in_progress: too many calls, or this device
    │                             is already pushing (retryable)
    ├── LicenceError              402 licence_expired / device_limit_reached (push retried later)
    ├── AuthError                 401: missing, bad or expired token (after one refresh)
    ├── ForbiddenError            403 not_a_member / role_forbidden
    ├── DeviceError               404 device_not_registered, 403 device_revoked / device_other_shop /
    │                             device_credential_invalid / device_credential_unclaimed
    ├── ProtocolError             400 batch_too_large / invalid_payload / invalid_cursor, 409 cursor_ahead
    ├── SchemaError               local: unknown table or column, no schema yet
    ├── InvalidValueError         local: a value the column cannot hold (also a ValueError)
    └── NotFoundError             local: no such row or open conflict (also a KeyError)

Every error carries ``status`` (HTTP status or None), ``code`` (PostgREST code such as ``PT402``),
``reason`` (the server's ``details``: ``licence_expired``...), ``hint`` and ``retryable``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ShopSyncError",
    "TransportError",
    "RateLimitedError",
    "LicenceError",
    "AuthError",
    "ForbiddenError",
    "DeviceError",
    "ProtocolError",
    "SchemaError",
    "InvalidValueError",
    "NotFoundError",
    "error_from_response",
]


class ShopSyncError(Exception):
    """Base of every shopsync client error."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        reason: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.reason:
            parts.append(f"[{self.reason}]")
        if self.status:
            parts.append(f"(HTTP {self.status})")
        return " ".join(parts)


class TransportError(ShopSyncError):
    """The call did not complete: network down, timeout, or a 5xx. Nothing is lost; retry later."""

    retryable = True


class RateLimitedError(ShopSyncError):
    """429: this device pushed too often; retry after a back-off."""

    retryable = True


class LicenceError(ShopSyncError):
    """402: the shop's licence expired (pushes refused, pulls continue) or its device limit is reached."""

    retryable = True


class AuthError(ShopSyncError):
    """401: no token, a malformed one, or one that stayed expired after a refresh."""


class ForbiddenError(ShopSyncError):
    """403: the user is not an active member of a shop, or their role may not do this."""


class DeviceError(ShopSyncError):
    """This device is not registered in the caller's shop, belongs to another shop, or was revoked."""


class ProtocolError(ShopSyncError):
    """The server refused the call's shape (400) or the cursor is ahead of the shop's log (409)."""


class SchemaError(ShopSyncError):
    """Local: the table or column is not in the synced schema, or no schema was loaded yet."""


class InvalidValueError(ShopSyncError, ValueError):
    """Local: a value the column's type cannot hold (checked before it is queued)."""


class NotFoundError(ShopSyncError, KeyError):
    """Local: no such row (or it is deleted), or no such open conflict."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return ShopSyncError.__str__(self)


_BY_REASON: dict[str, type[ShopSyncError]] = {
    "not_authenticated": AuthError,
    "not_a_member": ForbiddenError,
    "role_forbidden": ForbiddenError,
    "device_not_registered": DeviceError,
    "device_revoked": DeviceError,
    "device_other_shop": DeviceError,
    "device_credential_invalid": DeviceError,
    "device_credential_unclaimed": DeviceError,
    "licence_expired": LicenceError,
    "device_limit_reached": LicenceError,
    "rate_limited": RateLimitedError,
    "push_in_progress": RateLimitedError,
    "timed_out": TransportError,
    "call_failed": TransportError,
    "batch_too_large": ProtocolError,
    "invalid_payload": ProtocolError,
    "invalid_cursor": ProtocolError,
    "cursor_ahead": ProtocolError,
}

_BY_STATUS: dict[int, type[ShopSyncError]] = {
    400: ProtocolError,
    401: AuthError,
    402: LicenceError,
    403: ForbiddenError,
    404: DeviceError,
    409: ProtocolError,
    429: RateLimitedError,
}


def _status_of(code: str | None) -> int | None:
    if not code:
        return None
    if code.startswith("PT") and code[2:].isdigit():
        return int(code[2:])
    if code.startswith("PGRST3"):  # JWT errors
        return 401
    if code in ("PGRST000", "PGRST001", "PGRST002"):  # the database is unreachable (e.g. restarting)
        return 503
    if code == "PGRST003":  # timed out waiting for a pool connection
        return 504
    if code.isdigit() and len(code) == 3:
        return int(code)
    return None


def error_from_response(body: dict[str, Any], status: int | None = None) -> ShopSyncError:
    """Map a PostgREST error body ``{code, message, details, hint}`` to a :class:`ShopSyncError`."""
    code = body.get("code")
    code = str(code) if code is not None else None
    status = status or _status_of(code)
    details = body.get("details")
    reason = details if isinstance(details, str) and details.isidentifier() else None
    message = str(body.get("message") or f"request failed ({code})")
    cls = _BY_REASON.get(reason or "")
    if cls is None:
        if code == "PGRST301" or (code or "").startswith("PGRST3"):
            cls = AuthError
            reason = reason or ("token_expired" if "expired" in message.lower() else "invalid_token")
        elif status is not None:
            cls = TransportError if status >= 500 else _BY_STATUS.get(status, ProtocolError)
        elif code is None or code.startswith(("08", "53", "57", "58", "XX")):
            cls = TransportError  # no body, or the database is unavailable, overloaded or timed out
        elif code == "42501":
            cls = ForbiddenError
        else:
            cls = ProtocolError
    return cls(message, status=status, code=code, reason=reason, hint=body.get("hint"))
