"""A Supabase Realtime stand-in for the local stack: Broadcast over Phoenix channels, on the gateway.

``ws://127.0.0.1:54321/realtime/v1/websocket`` serves what supabase-py's realtime client and
realtime-js use for Broadcast, as supabase/realtime (``RealtimeWeb.UserSocket``,
``RealtimeWeb.RealtimeChannel``, ``Realtime.Tenants.Authorization``) does:

* **Connect**: ``?apikey=<JWT>&vsn=1.0.0|2.0.0`` (or an ``apikey`` header). The key is verified like
  every token of the stack (:func:`shopsync_stack.tokens.decode`) and must carry ``role`` and
  ``exp``; otherwise the upgrade is refused with 403.
* **Serializers**: ``vsn=1.0.0`` JSON objects ``{topic, event, payload, ref, join_ref}``;
  ``vsn=2.0.0`` JSON arrays ``[join_ref, ref, topic, event, payload]``, and broadcasts from the
  database as Realtime's binary user-broadcast frame (kind 4: sizes of topic, event and metadata,
  payload encoding 1 = JSON, then the bytes).
* **Heartbeat**: ``heartbeat`` on topic ``phoenix`` is answered ``ok``; a socket silent for 60 s is
  closed (Phoenix's timeout).
* **Join** ``phx_join`` on ``realtime:<topic>`` with ``config.private`` and ``access_token``: the
  token is verified (role and exp required); a private join is authorized as Realtime does it: a
  probe row per extension (broadcast, and presence when enabled) is inserted into
  ``realtime.messages`` by the stand-in's own (superuser) connection, then, with ``role``,
  ``realtime.topic``, ``request.jwt.claims``, ``request.jwt.claim.sub|role`` and ``request.headers``
  set transaction-locally, the probes the user can select are read, and the transaction is rolled
  back. No readable probe: ``phx_reply`` status ``error`` with
  ``{"reason": "Unauthorized: You do not have permissions to read from this Channel topic: <topic>"}``.
  Accepted: ``ok`` with ``{"postgres_changes": []}``.
* **Broadcast delivery**: ``realtime.send()`` of the bootstrap notifies ``shopsync_realtime`` at
  commit; each message goes to the sockets joined to its topic with the same ``private`` flag (and,
  private, allowed to read), as event ``broadcast`` with ``{type: "broadcast", event, payload,
  meta: {id}}``.
* **Token refresh** (``access_token``) re-verifies and, private, re-authorizes; a read permission that
  is gone ends the channel: a ``system`` message (status ``error``, "You do not have permissions to
  read from this Channel topic: <topic>") then ``phx_close``. A token that expires ends the channel
  the same way ("Token has expired N seconds ago"), checked at ``exp`` (at most every 5 minutes).
* **Leave** ``phx_leave``: ``ok``, and nothing more for that topic.

Not served: presence state, Postgres Changes, broadcasts sent by clients, replay, rate limits.
If the LISTEN connection to the database is lost, every socket is closed (code 1011): clients
reconnect and catch up by pulling, rather than missing a poke silently. Messages older than an hour
are deleted from ``realtime.messages`` every ten minutes (hosted Realtime drops its daily partitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiohttp import WSMsgType, web
from aiohttp.web_request import BaseRequest
from psycopg_pool import AsyncConnectionPool

from . import tokens

__all__ = ["NOTIFY_CHANNEL", "RealtimeHub"]

log = logging.getLogger("shopsync.realtime")

NOTIFY_CHANNEL = "shopsync_realtime"
PATH = "/realtime/v1/websocket"
_HEARTBEAT_TIMEOUT = 60.0
_CONFIRM_TOKEN_INTERVAL = 300.0
_USER_BROADCAST = 4
_JSON_ENCODING = 1


class _Refused(Exception):
    """A join or refresh refused, with Realtime's message."""


@dataclass(eq=False)
class _Channel:
    topic: str  # "realtime:<sub>"
    join_ref: str | None
    private: bool
    presence: bool
    token: str
    can_read: bool = True
    expiry: asyncio.TimerHandle | None = None

    @property
    def sub(self) -> str:
        return self.topic.removeprefix("realtime:")


@dataclass(eq=False)
class _Socket:
    ws: web.WebSocketResponse
    vsn: str
    token: str
    headers: dict[str, str]
    channels: dict[str, _Channel] = field(default_factory=dict)

    async def send_message(self, topic: str, event: str, payload: Any, ref: str | None = None,
                           join_ref: str | None = None) -> None:
        if self.ws.closed:
            return
        if self.vsn == "2.0.0":
            text = json.dumps([join_ref, ref, topic, event, payload], separators=(",", ":"))
        else:
            text = json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref,
                               "join_ref": join_ref}, separators=(",", ":"))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(text)

    async def reply(self, topic: str, ref: str | None, join_ref: str | None, status: str, response: Any) -> None:
        await self.send_message(topic, "phx_reply", {"status": status, "response": response}, ref, join_ref)


def _claims(token: str, secret: str) -> dict[str, Any]:
    """The token's claims, or :class:`_Refused` with Realtime's message."""
    try:
        claims = tokens.decode(token, secret)
    except tokens.TokenError as exc:
        text = str(exc)
        if text == "JWT expired":
            try:
                exp = tokens.decode(token, secret, now=0)["exp"]
            except (tokens.TokenError, KeyError):
                exp = int(time.time())
            raise _Refused(f"InvalidJWTToken: Token has expired {int(time.time() - exp)} seconds ago") from None
        if "Signature" in text:
            raise _Refused("JwtSignatureError: Failed to validate JWT signature") from None
        raise _Refused("MalformedJWT: The token provided is not a valid JWT") from None
    if not isinstance(claims.get("role"), str) or not isinstance(claims.get("exp"), (int, float)):
        raise _Refused("InvalidJWTToken: Fields `role` and `exp` are required in JWT")
    return claims


class RealtimeHub:
    """Sockets, their channels, the LISTEN connection and the authorization pool (module docstring)."""

    def __init__(self, admin_dsn: str, jwt_secret: str):
        self.admin_dsn = admin_dsn
        self.jwt_secret = jwt_secret
        self.pool = AsyncConnectionPool(admin_dsn, min_size=1, max_size=4, open=False,
                                        kwargs={"autocommit": True})
        self.sockets: set[_Socket] = set()
        self._listener: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        await self.pool.open(wait=False)
        self._listener = asyncio.create_task(self._listen())
        self._pruner = asyncio.create_task(self._prune())

    async def close(self) -> None:
        for task in (self._listener, self._pruner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for sock in list(self.sockets):
            with contextlib.suppress(Exception):
                await sock.ws.close(code=1001, message=b"server shutting down")
        await self.pool.close()

    # -- the database side -----------------------------------------------------------------------
    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.admin_dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"listen {NOTIFY_CHANNEL}")
                    self.listening.set()
                    delay = 0.1
                    async for note in conn.notifies():
                        await self._deliver(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: drop every socket, then retry
                if self.listening.is_set():
                    log.warning("realtime: LISTEN connection lost (%s); closing sockets", exc)
                self.listening.clear()
                for sock in list(self.sockets):
                    with contextlib.suppress(Exception):
                        await sock.ws.close(code=1011, message=b"database connection lost")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _prune(self) -> None:
        """Hosted Realtime drops realtime.messages partitions after a few days; here the one table is
        pruned of messages older than an hour, every ten minutes."""
        while True:
            await asyncio.sleep(600)
            try:
                async with self.pool.connection() as conn:
                    await conn.execute("delete from realtime.messages where inserted_at < now() - interval '1 hour'")
            except psycopg.Error as exc:
                log.info("realtime: pruning realtime.messages failed: %s", exc)

    async def _deliver(self, raw: str) -> None:
        try:
            note = json.loads(raw)
            sub, event, private = str(note["topic"]), str(note["event"]), bool(note["private"])
            payload, msg_id = note.get("payload") or {}, str(note.get("id"))
        except (ValueError, KeyError, TypeError):
            log.warning("realtime: unreadable notification %r", raw[:200])
            return
        topic = f"realtime:{sub}"
        v1 = {"type": "broadcast", "event": event, "payload": payload, "meta": {"id": msg_id}}
        frame: bytes | None = None
        for sock in list(self.sockets):
            chan = sock.channels.get(topic)
            if chan is None or chan.private != private or not chan.can_read:
                continue
            if sock.vsn == "2.0.0":
                if frame is None:
                    frame = _user_broadcast_frame(topic, event, {"id": msg_id}, payload)
                with contextlib.suppress(ConnectionError, RuntimeError):
                    if not sock.ws.closed:
                        await sock.ws.send_bytes(frame)
            else:
                await sock.send_message(topic, "broadcast", v1)

    async def can_read(self, sub: str, claims: dict[str, Any], headers: dict[str, str], presence: bool) -> bool:
        """Realtime Authorization: may a user with ``claims`` read the private topic ``sub``?"""
        extensions = ["broadcast", "presence"] if presence else ["broadcast"]
        probes = {ext: uuid.uuid4() for ext in extensions}
        role = str(claims.get("role"))
        async with self.pool.connection() as conn:
            try:
                async with conn.transaction(force_rollback=True):
                    for ext, probe in probes.items():
                        await conn.execute("insert into realtime.messages (id, topic, extension) values (%s, %s, %s)",
                                           (probe, sub, ext))
                    await conn.execute(
                        "select set_config('role', %s, true), set_config('realtime.topic', %s, true),"
                        " set_config('request.jwt.claims', %s, true), set_config('request.jwt.claim.sub', %s, true),"
                        " set_config('request.jwt.claim.role', %s, true), set_config('request.headers', %s, true)",
                        (role, sub, json.dumps(claims), str(claims.get("sub") or ""), role, json.dumps(headers)))
                    cur = await conn.execute("select id from realtime.messages where id = any(%s)",
                                             (list(probes.values()),))
                    readable = {row[0] for row in await cur.fetchall()}
            except psycopg.Error as exc:  # an RLS policy error is a refusal, as Realtime logs it
                log.warning("realtime: RlsPolicyError on %s: %s", sub, exc)
                return False
        return bool(readable)

    # -- the socket side -------------------------------------------------------------------------
    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        query = request.rel_url.query
        vsn = query.get("vsn", "1.0.0")
        token = query.get("apikey") or request.headers.get("apikey") or request.headers.get("x-api-key") or ""
        if vsn not in ("1.0.0", "2.0.0"):
            return web.json_response({"message": f"unsupported serializer version {vsn}"}, status=403)
        if not token:
            return web.json_response({"message": "MissingAPIKey: API key is missing or not a valid string"}, status=403)
        try:
            _claims(token, self.jwt_secret)
        except _Refused as exc:
            return web.json_response({"message": str(exc)}, status=403)
        ws = web.WebSocketResponse(receive_timeout=_HEARTBEAT_TIMEOUT, max_msg_size=1 << 20)
        await ws.prepare(request)
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-")}
        sock = _Socket(ws, vsn, token, headers)
        self.sockets.add(sock)
        try:
            while True:
                try:
                    msg = await ws.receive()
                except TimeoutError:
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(sock, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    continue  # client broadcasts (kind 3) are not served here
                else:
                    break
        finally:
            self.sockets.discard(sock)
            for chan in sock.channels.values():
                if chan.expiry is not None:
                    chan.expiry.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    async def _on_text(self, sock: _Socket, data: str) -> None:
        try:
            raw = json.loads(data)
            if sock.vsn == "2.0.0":
                join_ref, ref, topic, event, payload = raw
            else:
                join_ref, ref, topic, event, payload = (raw.get("join_ref"), raw.get("ref"), raw["topic"],
                                                        raw["event"], raw.get("payload") or {})
            if not isinstance(topic, str) or not isinstance(event, str) or not isinstance(payload, dict):
                raise ValueError("bad message")
        except (ValueError, KeyError, TypeError, AttributeError):
            log.info("realtime: unreadable message %r", data[:200])
            return
        if topic == "phoenix" and event == "heartbeat":
            await sock.reply(topic, ref, None, "ok", {})
        elif event == "phx_join":
            await self._join(sock, topic, ref, join_ref, payload)
        elif event == "phx_leave":
            chan = sock.channels.pop(topic, None)
            if chan is not None and chan.expiry is not None:
                chan.expiry.cancel()
            await sock.reply(topic, ref, join_ref, "ok", {})
        elif event == "access_token" and topic in sock.channels:
            await self._refresh(sock, sock.channels[topic], payload.get("access_token"))

    async def _join(self, sock: _Socket, topic: str, ref: str | None, join_ref: str | None,
                    payload: dict[str, Any]) -> None:
        if not topic.startswith("realtime:") or topic == "realtime:":
            reason = "TopicNameRequired: You must provide a topic name"
            await sock.reply(topic, ref, join_ref, "error", {"reason": reason})
            return
        config: dict[str, Any] = payload["config"] if isinstance(payload.get("config"), dict) else {}
        presence_config: dict[str, Any] = config["presence"] if isinstance(config.get("presence"), dict) else {}
        token = payload.get("access_token") or payload.get("user_token") or sock.token
        if not isinstance(token, str) or token.startswith("sb_"):
            token = sock.token
        old = sock.channels.pop(topic, None)
        if old is not None and old.expiry is not None:
            old.expiry.cancel()
        chan = _Channel(topic, join_ref if join_ref is not None else ref, bool(config.get("private")),
                        bool(presence_config.get("enabled")), token)
        try:
            claims = _claims(token, self.jwt_secret)
            if chan.private and not await self.can_read(chan.sub, claims, sock.headers, chan.presence):
                raise _Refused(f"Unauthorized: You do not have permissions to read from this Channel topic: {chan.sub}")
        except _Refused as exc:
            await sock.reply(topic, ref, join_ref, "error", {"reason": str(exc)})
            return
        sock.channels[topic] = chan
        self._watch_expiry(sock, chan, claims)
        await sock.reply(topic, ref, join_ref, "ok", {"postgres_changes": []})

    async def _refresh(self, sock: _Socket, chan: _Channel, token: Any) -> None:
        if not isinstance(token, str) or token == chan.token or token.startswith("sb_"):
            return
        chan.token = token
        try:
            claims = _claims(token, self.jwt_secret)
            if chan.private and not await self.can_read(chan.sub, claims, sock.headers, chan.presence):
                raise _Refused(f"Unauthorized: You do not have permissions to read from this Channel topic: {chan.sub}")
        except _Refused as exc:
            await self.shutdown(sock, chan, str(exc).split(": ", 1)[1])
            return
        self._watch_expiry(sock, chan, claims)

    def _watch_expiry(self, sock: _Socket, chan: _Channel, claims: dict[str, Any]) -> None:
        if chan.expiry is not None:
            chan.expiry.cancel()
        left = float(claims["exp"]) - time.time()
        loop = asyncio.get_running_loop()
        chan.expiry = loop.call_later(max(0.0, min(_CONFIRM_TOKEN_INTERVAL, left)),
                                      lambda: asyncio.ensure_future(self._confirm_token(sock, chan)))

    async def _confirm_token(self, sock: _Socket, chan: _Channel) -> None:
        if sock.channels.get(chan.topic) is not chan:
            return
        try:
            claims = _claims(chan.token, self.jwt_secret)
        except _Refused as exc:
            await self.shutdown(sock, chan, str(exc).split(": ", 1)[1])
            return
        self._watch_expiry(sock, chan, claims)

    async def shutdown(self, sock: _Socket, chan: _Channel, message: str) -> None:
        """End a channel as Realtime's shutdown_response does: a system error, then phx_close."""
        if chan.expiry is not None:
            chan.expiry.cancel()
        if sock.channels.get(chan.topic) is chan:
            del sock.channels[chan.topic]
        chan.can_read = False
        await sock.send_message(chan.topic, "system", {"extension": "system", "status": "error",
                                                       "message": message, "channel": chan.sub},
                                None, chan.join_ref)
        await sock.send_message(chan.topic, "phx_close", {}, chan.join_ref, chan.join_ref)


def _user_broadcast_frame(topic: str, event: str, meta: dict[str, Any], payload: Any) -> bytes:
    """Realtime's V2 binary frame for a broadcast from the database (V2Serializer, kind 4)."""
    t, e = topic.encode(), event.encode()
    m = json.dumps(meta, separators=(",", ":")).encode()
    body = json.dumps(payload, separators=(",", ":")).encode()
    if max(len(t), len(e), len(m)) > 255:
        raise ValueError("topic, event and metadata are at most 255 bytes each")
    return bytes([_USER_BROADCAST, len(t), len(e), len(m), _JSON_ENCODING]) + t + e + m + body
