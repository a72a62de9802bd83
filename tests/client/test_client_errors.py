"""Server error bodies map onto the client's exception hierarchy."""

from __future__ import annotations

import pytest

from shopsync import (
    AuthError,
    DeviceError,
    ForbiddenError,
    LicenceError,
    ProtocolError,
    RateLimitedError,
    ShopSyncError,
    TransportError,
    error_from_response,
)


@pytest.mark.parametrize(("body", "cls", "status", "reason"), [
    ({"code": "PT401", "details": "not_authenticated"}, AuthError, 401, "not_authenticated"),
    ({"code": "PGRST301", "message": "JWT expired"}, AuthError, 401, "token_expired"),
    ({"code": "PT403", "details": "role_forbidden"}, ForbiddenError, 403, "role_forbidden"),
    ({"code": "PT403", "details": "device_revoked"}, DeviceError, 403, "device_revoked"),
    ({"code": "PT404", "details": "device_not_registered"}, DeviceError, 404, "device_not_registered"),
    ({"code": "PT402", "details": "licence_expired"}, LicenceError, 402, "licence_expired"),
    ({"code": "PT429", "details": "rate_limited"}, RateLimitedError, 429, "rate_limited"),
    ({"code": "PT400", "details": "batch_too_large"}, ProtocolError, 400, "batch_too_large"),
    ({"code": "PT409", "details": "cursor_ahead"}, ProtocolError, 409, "cursor_ahead"),
    ({"code": "503", "message": "Service Unavailable"}, TransportError, 503, None),
    ({"code": "57014", "message": "canceling statement due to statement timeout"}, TransportError, None, None),
])
def test_error_bodies_map_to_the_hierarchy(body: dict[str, str], cls: type, status: int | None,
                                           reason: str | None) -> None:
    err = error_from_response(body)
    assert type(err) is cls and isinstance(err, ShopSyncError)
    assert (err.status, err.reason) == (status, reason)
    assert err.retryable == (cls in (TransportError, RateLimitedError, LicenceError))
