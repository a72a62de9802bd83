"""How the client reaches the server: RPC calls through supabase-py, errors mapped, tokens refreshed.

A transport is anything with ``call(fn, params) -> JSON``; tests wrap the real one to inject
faults (a response lost after the server committed).

Device RPCs (:data:`DEVICE_RPCS`) carry the device's secret in the ``x-device-secret`` header
(docs/protocol.md): :class:`SyncClient` hands the transport a callable reading it from the store
(``use_device_secret``), so a rotated or newly issued secret is used from the next call on. A
transport wrapper that should pass the secret on delegates the attribute to what it wraps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from .errors import AuthError, ShopSyncError, TransportError, error_from_response

__all__ = ["Transport", "SupabaseTransport", "TokenSource", "DEVICE_RPCS", "DEVICE_SECRET_HEADER"]

TokenSource = str | Callable[[], str]

#: The RPCs that act as a device: each is refused (PT403 device_credential_invalid) without its secret.
DEVICE_RPCS = frozenset({
    "sync_push", "sync_pull", "sync_pull_v2", "sync_register_device", "sync_rotate_device_secret",
    "sync_checksums", "sync_table_rows", "sync_report_repair",
})
#: The request header that carries the device's secret.
DEVICE_SECRET_HEADER = "x-device-secret"


class Transport(Protocol):
    def call(self, fn: str, params: dict[str, Any]) -> Any:
        """Call the RPC ``fn`` with ``params``; return its JSON or raise a :class:`ShopSyncError`."""
        ...


class SupabaseTransport:
    """RPCs through a supabase-py client (never the service role key: a user's access token).

    ``access_token`` is a token or a callable returning a fresh one. Without it, the client's
    own auth session is used (``client.auth.get_session()`` / ``refresh_session()``). On an
    expired or rejected token the transport gets a new one once and retries the call once.
    """

    def __init__(self, client: Any, access_token: TokenSource | None = None) -> None:
        self.client = client
        self._token_source = access_token
        self._token: str | None = None
        self._lock = threading.Lock()
        self._device_secret: Callable[[], str | None] = lambda: None

    def use_device_secret(self, source: Callable[[], str | None]) -> None:
        """Send ``source()`` (the device's secret, or None) as ``x-device-secret`` on device RPCs."""
        self._device_secret = source

    def realtime_endpoint(self) -> tuple[str, str] | None:
        """The project URL and API key of the supabase-py client (the live subscription's), if known."""
        url, key = getattr(self.client, "supabase_url", None), getattr(self.client, "supabase_key", None)
        return (str(url).rstrip("/"), str(key)) if url and key else None

    def access_token(self) -> str | None:
        """The user's access token as the token source (or the auth session) gives it now."""
        return self._fetch_token(refresh=False) or self._token

    @classmethod
    def from_url(cls, url: str, anon_key: str, access_token: TokenSource) -> SupabaseTransport:
        import supabase

        return cls(supabase.create_client(url, anon_key), access_token)

    def _fetch_token(self, *, refresh: bool) -> str | None:
        src = self._token_source
        if callable(src):
            return src()
        if isinstance(src, str):
            return src
        auth = getattr(self.client, "auth", None)
        if auth is None:
            return None
        try:
            session = auth.refresh_session() if refresh else auth.get_session()
        except Exception as exc:  # supabase_auth errors: report as auth failures
            raise AuthError(f"could not get an access token from the auth session: {exc}",
                            status=401, reason="token_refresh_failed") from exc
        return getattr(session, "access_token", None) if session else None

    def _use_token(self, *, refresh: bool) -> None:
        token = self._fetch_token(refresh=refresh)
        if token:
            self._token = token
            self.client.postgrest.auth(token)

    def _call_once(self, fn: str, params: dict[str, Any]) -> Any:
        from postgrest.exceptions import APIError

        try:
            builder = self.client.rpc(fn, params)
            secret = self._device_secret() if fn in DEVICE_RPCS else None
            if secret:
                builder.request.headers[DEVICE_SECRET_HEADER] = secret
            return builder.execute().data
        except APIError as exc:
            raise error_from_response({"code": exc.code, "message": exc.message, "details": exc.details,
                                       "hint": exc.hint}) from exc
        except ShopSyncError:
            raise
        except Exception as exc:  # httpx network errors, timeouts, bad bodies
            raise TransportError(f"{fn} failed: {type(exc).__name__}: {exc}", reason="network") from exc

    def call(self, fn: str, params: dict[str, Any]) -> Any:
        with self._lock:
            if self._token is None:
                self._use_token(refresh=False)
        try:
            return self._call_once(fn, params)
        except AuthError as exc:
            can_refresh = callable(self._token_source) or self._token_source is None
            if not can_refresh:
                raise
            with self._lock:
                self._use_token(refresh=True)
            try:
                return self._call_once(fn, params)
            except AuthError as again:
                raise again from exc

