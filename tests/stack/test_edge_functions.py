"""Edge functions through the gateway: /functions/v1/<name>/..., verify_jwt as config.toml says."""

from __future__ import annotations

from datetime import datetime

import httpx
from supabase import Client
from supabase_functions.errors import FunctionsHttpError

from shopsync_stack.settings import StackSettings


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


def test_sync_push_and_pull_through_the_function_with_the_callers_jwt(settings: StackSettings, pg: object) -> None:
    """The function is a thin layer: the same answers as the RPCs, RLS applied to the caller."""
    import uuid

    from sync_helpers import SHOP_A, event

    from shopsync_stack import mint_user_token

    token = mint_user_token(settings, "staff@shop-a.test")
    headers = {"Authorization": f"Bearer {token}", "apikey": settings.anon_key}
    base = f"{settings.api_url}/functions/v1/sync"
    with httpx.Client(headers=headers, timeout=30) as http:
        device = str(uuid.uuid4())
        reg = http.post(f"{settings.api_url}/rest/v1/rpc/sync_register_device",
                        json={"p_device_id": device, "p_name": "edge till"})
        assert reg.status_code == 200, reg.text
        # The device's secret, sent as a header the function forwards to the RPCs.
        http.headers["x-device-secret"] = reg.json()["device_secret"]
        row_id = str(uuid.uuid4())
        pushed = http.post(f"{base}/push", json={"device_id": device,
                                                  "events": [event("customers", "insert", row_id, {"name": "Edge"})]})
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["results"][0]["status"] == "applied"
        cursor = 0
        rows: dict[str, dict[str, object]] = {}
        while True:
            page = http.get(f"{base}/pull", params={"device_id": device, "cursor": cursor, "limit": 200})
            assert page.status_code == 200, page.text
            body = page.json()
            rows.update({c["row_id"]: c["row"] for c in body["changes"]})
            cursor = body["cursor"]
            if not body["has_more"]:
                break
        assert rows[row_id]["name"] == "Edge" and rows[row_id]["shop_id"] == SHOP_A
        assert all(r["shop_id"] == SHOP_A for r in rows.values())
        # A whole-call error comes back with PostgREST's status and body.
        unregistered = http.get(f"{base}/pull", params={"device_id": str(uuid.uuid4()), "cursor": 0})
        assert unregistered.status_code == 404
        assert unregistered.json()["details"] == "device_not_registered"
        # Without the device's secret the function gets the RPC's refusal, unchanged.
        borrowed = http.get(f"{base}/pull", params={"device_id": device, "cursor": 0},
                            headers={"x-device-secret": "not-this-devices-secret"})
        assert (borrowed.status_code, borrowed.json()["details"]) == (403, "device_credential_invalid")
        health = http.get(f"{base}/health").json()
        assert isinstance(health["schema_version"], int) and health["schema_version"] >= 5
