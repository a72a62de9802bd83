"""Helpers shared by the server-protocol tests: users, devices and events through supabase-py."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import psycopg
from supabase import Client, create_client

from shopsync_stack import mint_user_token
from shopsync_stack.settings import StackSettings

SHOP_A = "aaaaaaaa-0000-4000-8000-000000000000"
SHOP_B = "bbbbbbbb-0000-4000-8000-000000000000"


def user_client(settings: StackSettings, email: str) -> Client:
    """A supabase-py client signed in as ``email`` (token minted as Supabase Auth would)."""
    client = create_client(settings.api_url, settings.anon_key)
    client.postgrest.auth(mint_user_token(settings, email))
    return client


#: The secret of every device these helpers registered (device id -> device_secret), as the device
#: itself would keep it; :func:`rpc` sends it as ``x-device-secret`` with calls naming that device.
DEVICE_SECRETS: dict[str, str] = {}


def rpc(client: Client, fn: str, **args: Any) -> Any:
    builder = client.rpc(fn, args)
    secret = DEVICE_SECRETS.get(str(args.get("p_device_id")))
    if secret:
        builder.request.headers["x-device-secret"] = secret
    data = builder.execute().data
    if isinstance(data, dict) and isinstance(data.get("device_secret"), str):
        DEVICE_SECRETS[str(data["device_id"])] = data["device_secret"]
    return data


def register(client: Client, name: str = "till", *, by: Client | None = None) -> str:
    """A new device id registered in the caller's shop; ``by`` registers it first (viewers take no
    seats: an owner or staff member registers the device a viewer then uses)."""
    device_id = str(uuid.uuid4())
    if by is not None:
        rpc(by, "sync_register_device", p_device_id=device_id, p_name=name)
    rpc(client, "sync_register_device", p_device_id=device_id, p_name=name)
    return device_id


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def event(table: str, op: str, row_id: str, data: dict[str, Any] | None = None, *,
          base_version: int | None = None, client_ts: str | None = None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "table": table, "op": op, "row_id": row_id,
        "base_version": base_version, "data": data if data is not None else {},
        "client_ts": client_ts or now_iso(),
    }
    ev.update(extra)
    return ev


def push(client: Client, device_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rpc(client, "sync_push", p_device_id=device_id, p_events=events)["results"]


def pull_all(client: Client, device_id: str, cursor: int = 0, limit: int = 500) -> tuple[list[dict[str, Any]], int]:
    changes: list[dict[str, Any]] = []
    while True:
        page = rpc(client, "sync_pull", p_device_id=device_id, p_cursor=cursor, p_limit=limit)
        changes.extend(page["changes"])
        cursor = page["cursor"]
        if not page["has_more"]:
            return changes, cursor


@contextmanager
def config_value(db: psycopg.Connection, key: str, value: str) -> Iterator[None]:
    """Temporarily change a row of shopsync.config."""
    old = db.execute("select value::text from shopsync.config where key = %s", (key,)).fetchone()
    db.execute("update shopsync.config set value = %s::jsonb where key = %s", (value, key))
    try:
        yield
    finally:
        db.execute("update shopsync.config set value = %s::jsonb where key = %s", (old[0], key))


# -- As a user on a raw connection (two-connection tests: locks, concurrency) ---------------------
def claims_of(settings: StackSettings, email: str) -> dict[str, Any]:
    """The claims of a token minted for ``email``."""
    payload = mint_user_token(settings, email).split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def as_user(conn: psycopg.Connection, claims: dict[str, Any]) -> None:
    conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                 (json.dumps(claims),))


def sync_push(conn: psycopg.Connection, device: str, events: list[dict[str, Any]]) -> Any:
    secret = DEVICE_SECRETS.get(str(device))
    if secret:  # the device's secret in the request headers, as the gateway (PostgREST) sets them
        conn.execute("select set_config('request.headers', %s, true)", (json.dumps({"x-device-secret": secret}),))
    return conn.execute("select public.sync_push(%s, %s::jsonb)", (device, json.dumps(events))).fetchone()[0]
