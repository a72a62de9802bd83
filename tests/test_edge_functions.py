"""Edge functions through the gateway: /functions/v1/<name>/..., verify_jwt as config.toml says."""

from __future__ import annotations

from datetime import datetime

import httpx
from supabase import Client
from supabase_functions.errors import FunctionsHttpError

from shopsync.settings import StackSettings


def test_sync_health_answers_with_the_database_status(anon: Client) -> None:
    body = anon.functions.invoke("sync/health", {"method": "GET", "responseType": "json"})
    assert isinstance(body, dict)
    assert body["ok"] is True and body["database"] is True
    assert datetime.fromisoformat(body["server_time"]).tzinfo is not None
    assert 0 <= body["latency_ms"] < 10_000


def test_sync_health_without_authorization_is_401(settings: StackSettings) -> None:
    resp = httpx.get(f"{settings.api_url}/functions/v1/sync/health", headers={"apikey": settings.anon_key})
    assert resp.status_code == 401


def test_sync_health_with_a_forged_token_is_401(settings: StackSettings) -> None:
    resp = httpx.get(f"{settings.api_url}/functions/v1/sync/health",
                     headers={"Authorization": "Bearer a.b.c", "apikey": settings.anon_key})
    assert resp.status_code == 401


def test_unknown_sync_path_is_404_json_from_the_function(settings: StackSettings, anon: Client) -> None:
    resp = httpx.get(f"{settings.api_url}/functions/v1/sync/nope",
                     headers={"Authorization": f"Bearer {settings.anon_key}", "apikey": settings.anon_key})
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"
    try:
        anon.functions.invoke("sync/nope", {"method": "GET"})
    except FunctionsHttpError as exc:
        assert exc.status == 404
    else:
        raise AssertionError("supabase-py should raise FunctionsHttpError for a 404")
