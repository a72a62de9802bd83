"""Fresh shops for the reliability tests: each history gets its own tenants, so its checker reads
only its own rows and a thousand histories cost what one does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import supabase
from supabase.lib.client_options import SyncClientOptions

from shopsync import LocalStore, SupabaseTransport, SyncClient
from shopsync_stack.settings import StackSettings

__all__ = ["Tenant", "make_tenant", "device_client"]


@dataclass(frozen=True)
class Tenant:
    shop_id: str
    owner: str  # emails
    staff: str


def make_tenant(conn: Any, label: str = "t") -> Tenant:
    """A new shop with an owner and a staff member and a roomy licence (as postgres)."""
    shop_id = str(uuid.uuid4())
    tag = shop_id[:8]
    emails = {role: f"{role}-{label}-{tag}@faults.test" for role in ("owner", "staff")}
    with conn.transaction():
        conn.execute("insert into public.shops (id, name) values (%s, %s)", (shop_id, f"Faults {label} {tag}"))
        conn.execute("insert into public.licenses (shop_id, plan, max_devices, valid_until)"
                     " values (%s, 'standard', 1000, now() + interval '1 year')", (shop_id,))
        for role, email in emails.items():
            user_id = str(uuid.uuid4())
            conn.execute(
                "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at)"
                " values (%s, 'authenticated', 'authenticated', %s,"
                " '{\"provider\": \"email\", \"providers\": [\"email\"]}'::jsonb, '{}'::jsonb, now())",
                (user_id, email))
            conn.execute("insert into public.shop_members (shop_id, user_id, role) values (%s, %s, %s)",
                         (shop_id, user_id, role))
    return Tenant(shop_id, emails["owner"], emails["staff"])


def device_client(settings: StackSettings, store: LocalStore, url: str, token: str, *, timeout: float = 2.0,
                  wrap: Any = None, **kwargs: Any) -> SyncClient:
    """A SyncClient over real HTTP (supabase-py) to ``url`` (a proxy) with a short client timeout."""
    sb = supabase.create_client(url, settings.anon_key,
                                options=SyncClientOptions(postgrest_client_timeout=httpx.Timeout(timeout)))
    transport: Any = SupabaseTransport(sb, token)
    if wrap is not None:
        transport = wrap(transport)
    return SyncClient(store, transport=transport, **kwargs)

