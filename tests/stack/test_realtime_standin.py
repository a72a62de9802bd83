"""The local Realtime stand-in on the wire (real websockets, real Postgres): what supabase-py's
realtime client and realtime-js send and expect, both serializer versions, Realtime Authorization by
the realtime.messages policies, token refresh and expiry, heartbeat, leave. Messages from the
database come from realtime.send(), called by the live-sync trigger at commit."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sync_helpers import SHOP_A, SHOP_B
from tenants import make_tenant
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings

WAIT = 10.0


class Phoenix:
    """A Phoenix socket client speaking vsn 1.0.0 (JSON objects) or 2.0.0 (JSON arrays)."""

    def __init__(self, settings: StackSettings, vsn: str = "1.0.0", apikey: str | None = None) -> None:
        url = settings.api_url.replace("http://", "ws://")
        self.vsn = vsn
        self.ws: ClientConnection = connect(f"{url}/realtime/v1/websocket?apikey={apikey or settings.anon_key}"
                                            f"&vsn={vsn}", open_timeout=WAIT)
        self.ref = 0

    def send(self, topic: str, event: str, payload: dict[str, Any], join_ref: str | None = None) -> str:
        self.ref += 1
        ref = str(self.ref)
        if self.vsn == "2.0.0":
            self.ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        else:
            self.ws.send(json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref,
                                     "join_ref": join_ref}))
        return ref

    def recv(self, timeout: float = WAIT) -> dict[str, Any] | bytes:
        raw = self.ws.recv(timeout=timeout)
        if isinstance(raw, bytes):
            return raw
        msg = json.loads(raw)
        if self.vsn == "2.0.0":
            join_ref, ref, topic, event, payload = msg
            return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event, "payload": payload}
        assert isinstance(msg, dict)
        return msg

    def recv_json(self, timeout: float = WAIT) -> dict[str, Any]:
        msg = self.recv(timeout)
        assert isinstance(msg, dict), f"expected a text message, got {msg!r}"
        return msg

    def join(self, sub: str, token: str, *, private: bool = True) -> dict[str, Any]:
        self.ref += 1
        ref = str(self.ref)
        payload = {"config": {"broadcast": {"ack": False, "self": False}, "presence": {"key": "", "enabled": False},
                              "private": private, "postgres_changes": []}, "access_token": token}
        if self.vsn == "2.0.0":
            self.ws.send(json.dumps([ref, ref, f"realtime:{sub}", "phx_join", payload]))
        else:
            self.ws.send(json.dumps({"topic": f"realtime:{sub}", "event": "phx_join", "payload": payload,
                                     "ref": ref, "join_ref": ref}))
        reply = self.recv_json()
        assert reply["event"] == "phx_reply" and reply["ref"] == ref, reply
        return reply

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def phoenix(settings: StackSettings) -> Iterator[Any]:
    opened: list[Phoenix] = []

    def open_socket(vsn: str = "1.0.0", apikey: str | None = None) -> Phoenix:
        sock = Phoenix(settings, vsn, apikey)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        sock.close()


def _touch_shop(db_url: str, shop: str, statements: int = 1) -> int:
    """Change ``statements`` customers rows of ``shop`` in one transaction; the shop's cursor after."""
    with psycopg.connect(db_url) as conn:
        for i in range(statements):
            conn.execute("insert into public.customers (id, shop_id, name) values (%s, %s, %s)",
                         (uuid.uuid4(), shop, f"live {i}"))
        row = conn.execute("select last_seq from shopsync.shop_cursor where shop_id = %s", (shop,)).fetchone()
        assert row is not None
        return int(row[0])


def test_a_member_joins_their_shops_private_topic_and_hears_each_commit_once(settings: StackSettings,
                                                                             phoenix: Any) -> None:
    sock = phoenix()
    reply = sock.join(f"shop:{SHOP_A}", mint_user_token(settings, "staff@shop-a.test"))
    assert reply["payload"] == {"status": "ok", "response": {"postgres_changes": []}}
    cursor = _touch_shop(settings.db_url, SHOP_A, statements=3)  # three change-log statements, one commit
    msg = sock.recv_json()
    assert msg["event"] == "broadcast" and msg["topic"] == f"realtime:shop:{SHOP_A}" and msg["ref"] is None
    body = msg["payload"]
    assert body["type"] == "broadcast" and body["event"] == "changed"
    assert body["payload"]["cursor"] == cursor and body["meta"]["id"] == body["payload"]["id"]
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.5)  # one message per transaction, not per statement


def test_a_member_of_another_shop_cannot_join_a_shops_topic(settings: StackSettings, phoenix: Any) -> None:
    sock = phoenix()
    reply = sock.join(f"shop:{SHOP_A}", mint_user_token(settings, "staff@shop-b.test"))
    assert reply["payload"] == {"status": "error", "response": {
        "reason": f"Unauthorized: You do not have permissions to read from this Channel topic: shop:{SHOP_A}"}}
    # Nor does the anon key, which any app holds.
    reply = sock.join(f"shop:{SHOP_B}", settings.anon_key)
    assert reply["payload"]["status"] == "error" and reply["payload"]["response"]["reason"].startswith("Unauthorized")
    _touch_shop(settings.db_url, SHOP_A)
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.5)


def test_a_public_channel_of_the_same_name_hears_nothing_of_the_private_broadcast(settings: StackSettings,
                                                                                 phoenix: Any) -> None:
    sock = phoenix()
    reply = sock.join(f"shop:{SHOP_A}", mint_user_token(settings, "staff@shop-b.test"), private=False)
    assert reply["payload"]["status"] == "ok"  # public channels need no policy, as on hosted Realtime
    _touch_shop(settings.db_url, SHOP_A)
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.5)


def test_a_revoked_member_loses_the_subscription_when_the_token_is_refreshed(settings: StackSettings,
                                                                             phoenix: Any) -> None:
    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        tenant = make_tenant(conn, "live")
        sock = phoenix()
        sub = f"shop:{tenant.shop_id}"
        join_ref = sock.join(sub, mint_user_token(settings, tenant.staff))["ref"]
        conn.execute("update public.shop_members set revoked_at = now() where shop_id = %s and role = 'staff'",
                     (tenant.shop_id,))
    # The app's auth session refreshes the token; the client hands it to the channel.
    sock.send(f"realtime:{sub}", "access_token", {"access_token": mint_user_token(settings, tenant.staff,
                                                                                 expires_in=3599)}, join_ref)
    system = sock.recv_json()
    assert system["event"] == "system" and system["payload"] == {
        "extension": "system", "status": "error", "channel": sub,
        "message": f"You do not have permissions to read from this Channel topic: {sub}"}
    closed = sock.recv_json()
    assert closed["event"] == "phx_close" and closed["topic"] == f"realtime:{sub}"
    _touch_shop(settings.db_url, tenant.shop_id)
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.5)


def test_a_subscription_ends_when_its_token_expires(settings: StackSettings, phoenix: Any) -> None:
    sock = phoenix()
    token = mint_user_token(settings, "staff@shop-a.test", expires_in=2)
    assert sock.join(f"shop:{SHOP_A}", token)["payload"]["status"] == "ok"
    system = sock.recv_json(timeout=WAIT)
    assert system["event"] == "system" and system["payload"]["status"] == "error"
    assert system["payload"]["message"].startswith("Token has expired")
    assert sock.recv_json()["event"] == "phx_close"


def test_an_expired_or_forged_token_is_refused_at_join_and_at_connect(settings: StackSettings, phoenix: Any) -> None:
    sock = phoenix()
    expired = mint_user_token(settings, "staff@shop-a.test", expires_in=-10)
    reason = sock.join(f"shop:{SHOP_A}", expired)["payload"]["response"]["reason"]
    assert reason.startswith("InvalidJWTToken: Token has expired")
    forged = mint_user_token(settings, "staff@shop-a.test")[:-4] + "AAAA"
    assert sock.join(f"shop:{SHOP_A}", forged)["payload"]["response"]["reason"] == (
        "JwtSignatureError: Failed to validate JWT signature")
    with pytest.raises(InvalidStatus) as refused:
        Phoenix(settings, apikey=forged)
    assert refused.value.response.status_code == 403


def test_heartbeat_leave_and_the_v2_serializer_with_binary_broadcasts(settings: StackSettings, phoenix: Any) -> None:
    sock = phoenix("2.0.0")
    ref = sock.send("phoenix", "heartbeat", {})
    beat = sock.recv_json()
    assert beat == {"join_ref": None, "ref": ref, "topic": "phoenix", "event": "phx_reply",
                    "payload": {"status": "ok", "response": {}}}
    join = sock.join(f"shop:{SHOP_A}", mint_user_token(settings, "owner@shop-a.test"))
    assert join["payload"]["status"] == "ok" and join["join_ref"] == join["ref"]
    cursor = _touch_shop(settings.db_url, SHOP_A)
    frame = sock.recv()
    assert isinstance(frame, bytes)  # Realtime's user broadcast frame (V2Serializer, kind 4, JSON)
    kind, topic_size, event_size, meta_size, encoding = frame[:5]
    assert (kind, encoding) == (4, 1)
    rest = frame[5:]
    topic, rest = rest[:topic_size].decode(), rest[topic_size:]
    event, rest = rest[:event_size].decode(), rest[event_size:]
    meta, body = json.loads(rest[:meta_size]), json.loads(rest[meta_size:])
    assert topic == f"realtime:shop:{SHOP_A}" and event == "changed"
    assert body["cursor"] == cursor and meta == {"id": body["id"]}
    leave_ref = sock.send(f"realtime:shop:{SHOP_A}", "phx_leave", {}, join["ref"])
    left = sock.recv_json()
    assert left["event"] == "phx_reply" and left["ref"] == leave_ref and left["payload"]["status"] == "ok"
    _touch_shop(settings.db_url, SHOP_A)
    with pytest.raises(TimeoutError):
        sock.recv(timeout=0.5)


def test_supabase_pys_realtime_client_subscribes_and_hears_a_commit(settings: StackSettings) -> None:
    """The real library (realtime 2.x, vsn 1.0.0) against the stand-in, as SyncClient uses it."""
    import asyncio

    from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

    async def run() -> tuple[list[Any], dict[str, Any]]:
        client = AsyncRealtimeClient(f"{settings.api_url}/realtime/v1", token=settings.anon_key,
                                     auto_reconnect=False)
        await client.set_auth(mint_user_token(settings, "staff@shop-a.test"))
        heard: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        states: list[Any] = []
        channel = client.channel(f"shop:{SHOP_A}", {"config": {"broadcast": {"ack": False, "self": False},
                                                              "presence": {"key": "", "enabled": False},
                                                              "private": True}})
        def on_changed(message: Any) -> None:
            if not heard.done():
                heard.set_result(dict(message))

        channel.on_broadcast("changed", on_changed)
        await channel.subscribe(lambda state, err: states.append(state))
        started = time.monotonic()
        await asyncio.to_thread(_touch_shop, settings.db_url, SHOP_A)
        message = await asyncio.wait_for(heard, WAIT)
        assert time.monotonic() - started < WAIT
        await client.close()
        return states, message

    states, message = asyncio.run(run())
    assert states[0] == RealtimeSubscribeStates.SUBSCRIBED
    assert message["event"] == "changed" and isinstance(message["payload"]["cursor"], int)
