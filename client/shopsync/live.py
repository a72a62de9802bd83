"""Live sync: a Supabase Realtime subscription that pokes the background sync when the shop changes.

After a transaction changes a shop's synced rows the server sends one Broadcast on the private
topic ``shop:<shop_id>`` (event ``changed``, payload ``{"cursor": n}``, no row data). This module
keeps one subscription to it with supabase-py's own Realtime client (the ``realtime`` package's
``AsyncRealtimeClient``, on an asyncio loop in a daemon thread: supabase-py's sync client has no
Realtime) and calls ``poke()`` for every message whose cursor is ahead of the device's. The
background sync coalesces pokes (one sync in flight, at most one queued) and keeps its poll interval
as the fallback.

The subscription is kept up by a supervisor: connect (the project's API key), ``set_auth`` with the
user's access token, join the private channel; on a refused join, a channel error or close, or a
lost socket, drop the connection and try again after a full-jitter back-off (``backoff_base`` doubling
up to ``backoff_cap`` seconds). Every (re)join pokes once, so changes made while the socket was down
are pulled at once. The access token is re-read every ``token_check`` seconds and, when it changed,
sent on the channel (``access_token``), as realtime-js does: the server re-checks membership, and a
revoked member's channel is closed; a token that expires closes it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LiveSubscription", "topic_for_shop"]

log = logging.getLogger("shopsync.live")


def topic_for_shop(shop_id: str) -> str:
    """The Realtime topic a shop's changes are broadcast on (without Realtime's ``realtime:`` prefix)."""
    return f"shop:{shop_id}"


class LiveSubscription:
    """One supervised Realtime subscription (see the module docstring)."""

    def __init__(self, url: str, api_key: str, access_token: Callable[[], str | None],
                 shop_id: Callable[[], str | None], cursor: Callable[[], int], poke: Callable[[], None], *,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0, token_check: float = 30.0,
                 rng: Callable[[], float] = random.random) -> None:
        self.url = url.rstrip("/") + "/realtime/v1"
        self.api_key = api_key
        self._token = access_token
        self._shop_id = shop_id
        self._cursor = cursor
        self._poke = poke
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.token_check = token_check
        self._rng = rng
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._check = asyncio.Event()
        self._up = threading.Event()
        #: Set on every (re)join, and when a joined channel is lost; tests wait on them.
        self.joined = threading.Event()
        self.dropped = threading.Event()
        self.failures = 0
        self.last_error: str | None = None
        self.pokes = 0
        #: time.perf_counter() of the last poke (a message ahead of the device), or None.
        self.last_poke_at: float | None = None

    @property
    def is_up(self) -> bool:
        """The channel is joined and the socket open."""
        return self._up.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="shopsync-live", daemon=True)
        self._thread.start()
        started.wait(5)

    def check_token(self) -> None:
        """Read the access token now (not at the next ``token_check``) and, if it changed, send it:
        for an app whose auth session has just refreshed it."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._check.set)

    def stop(self, timeout: float | None = 10.0) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        self._up.clear()

    # -- the loop thread ----------------------------------------------------------------------------
    def _run(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        self._check = asyncio.Event()
        started.set()
        try:
            loop.run_until_complete(self._supervise())
        finally:
            loop.close()

    def backoff_delay(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(failures-1))]."""
        return float(self._rng() * min(self.backoff_cap, self.backoff_base * 2 ** max(failures - 1, 0)))

    async def _supervise(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed connect or join: back off and try again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("shopsync live: %s", self.last_error)
            finally:
                self._up.clear()
            if self._stop.is_set():
                break
            self.failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.backoff_delay(self.failures))

    async def _session(self) -> None:
        """One connection: join, then wait until it ends (stop, error, close, lost socket)."""
        from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

        assert self._stop is not None
        shop = self._shop_id()
        token = self._token()
        if not shop or not token:
            raise RuntimeError("no shop or access token yet (the device registers on its first sync)")
        ended = asyncio.Event()
        joined = asyncio.Event()
        client = AsyncRealtimeClient(self.url, token=self.api_key, auto_reconnect=False)
        try:
            await client.set_auth(token)
            channel = client.channel(topic_for_shop(shop), {"config": {
                "broadcast": {"ack": False, "self": False}, "presence": {"key": "", "enabled": False},
                "private": True}})
            channel.on_broadcast("changed", self._on_changed)

            def on_state(state: Any, error: Exception | None) -> None:
                if state == RealtimeSubscribeStates.SUBSCRIBED:
                    joined.set()
                else:
                    if error is not None:
                        self.last_error = str(error)
                    ended.set()

            await channel.subscribe(on_state)
            if not joined.is_set():
                raise RuntimeError(f"join refused: {self.last_error or 'timed out'}")
            self._up.set()
            self.failures = 0
            self.last_error = None
            self.joined.set()
            self._poke()  # catch up: changes made while the socket was down
            while not self._stop.is_set() and not ended.is_set():
                waiters = {asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(ended.wait()),
                           asyncio.ensure_future(self._check.wait())}
                await asyncio.wait(waiters, timeout=self.token_check, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                self._check.clear()
                if not self._stop.is_set() and not ended.is_set():
                    # A fresh token (the app's session refreshed it): hand it to the channel.
                    fresh = self._token()
                    if fresh and fresh != token:
                        token = fresh
                        await client.set_auth(token)
        finally:
            if self._up.is_set():
                self.dropped.set()
            self._up.clear()
            with contextlib.suppress(Exception):
                await client.close()

    def _on_changed(self, message: Any) -> None:
        payload = message.get("payload") if isinstance(message, dict) else None
        cursor = payload.get("cursor") if isinstance(payload, dict) else None
        try:
            if isinstance(cursor, int) and cursor <= self._cursor():
                return  # this device has pulled that far already
        except Exception:  # the store is busy or closed: poke anyway
            log.debug("shopsync live: cursor unreadable", exc_info=True)
        self.pokes += 1
        self.last_poke_at = time.perf_counter()
        self._poke()
