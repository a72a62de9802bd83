"""HS256 JSON Web Tokens, as Supabase Auth issues and PostgREST verifies them (stdlib only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from typing import Any

from .errors import StackError
from .settings import StackSettings

__all__ = ["TokenError", "decode", "encode", "mint_user_token"]


class TokenError(ValueError):
    """A token that is malformed, unsigned, signed with another secret, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _unb64(text: str) -> bytes:
    """Exact base64url as JWS requires (RFC 7515 s. 2): the URL-safe alphabet only, no padding,
    nothing before or after, and canonical (the unused low bits of the last character zero), so
    one byte string has exactly one accepted spelling."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenError("JWSError (CompactDecodeError Invalid base64url)")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise TokenError("JWSError (CompactDecodeError Invalid base64url)")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


def _json_object(data: bytes) -> dict[str, Any]:
    """A JSON object in strict UTF-8, without NaN/Infinity or duplicate members."""
    value = json.loads(data.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TokenError(f"JWT {name} claim is not a number")
    return float(value)


def encode(claims: dict[str, Any], secret: str) -> str:
    """Sign ``claims`` with HS256."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"


def decode(token: str, secret: str, *, now: float | None = None) -> dict[str, Any]:
    """Verify an HS256 token and return its claims; raise :class:`TokenError` otherwise.

    Strict: exactly three parts of exact base64url (see :func:`_unb64`); a header that is a JSON
    object with ``alg`` exactly ``HS256`` (``alg: none`` and every other algorithm are refused,
    whatever the signature part holds), ``typ`` optional (a string when present) and no ``crit``;
    the signature checked before the claims are read; ``exp`` and ``nbf``, when present, numbers
    that hold at ``now``.
    """
    if not isinstance(token, str):
        raise TokenError("JWSError (CompactDecodeError Invalid number of parts)")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError(f"Expected 3 parts in JWT; got {len(parts)}")
    try:
        header = _json_object(_unb64(parts[0]))
        payload = _unb64(parts[1])
        sig = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("JWSError (CompactDecodeError Invalid number of parts)") from exc
    if header.get("alg") != "HS256":
        raise TokenError(f"JWSError JWSInvalidSignature: unsupported alg {header.get('alg')!r}")
    if "typ" in header and not isinstance(header["typ"], str):
        raise TokenError("JWSError JWSInvalidHeader: typ is not a string")
    if "crit" in header:
        raise TokenError("JWSError JWSInvalidHeader: unsupported crit")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, sig):
        raise TokenError("JWSError JWSInvalidSignature")
    try:
        claims = _json_object(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("JWT claims are not a JSON object") from exc
    at = time.time() if now is None else now
    exp = _numeric_date(claims, "exp")
    if exp is not None and at >= exp:
        raise TokenError("JWT expired")
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and at < nbf:
        raise TokenError("JWT not yet valid")
    return claims


def mint_user_token(settings: StackSettings, email: str, *, expires_in: int = 3600) -> str:
    """An access token for the user ``email`` of ``auth.users``, as Supabase Auth would issue it.

    The claims are those GoTrue puts in an access token. When
    ``public.custom_access_token_hook(jsonb)`` exists it is called exactly as Supabase Auth calls it
    (as ``supabase_auth_admin``, with ``{user_id, claims, authentication_method}``) and its
    ``claims`` are signed instead.
    """
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(settings.db_url, autocommit=True) as conn:
        row = conn.execute(
            "select id, email, coalesce(phone, ''), raw_app_meta_data, raw_user_meta_data, is_anonymous"
            " from auth.users where lower(email) = lower(%s) and deleted_at is null",
            (email,),
        ).fetchone()
        if row is None:
            raise StackError(f"no user with email {email!r} in auth.users")
        user_id, user_email, phone, app_meta, user_meta, is_anonymous = row
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"{settings.api_url}/auth/v1",
            "sub": str(user_id),
            "aud": "authenticated",
            "exp": now + expires_in,
            "iat": now,
            "email": user_email,
            "phone": phone,
            "app_metadata": app_meta or {"provider": "email", "providers": ["email"]},
            "user_metadata": user_meta or {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": bool(is_anonymous),
        }
        hook = conn.execute("select to_regprocedure('public.custom_access_token_hook(jsonb)') is not null").fetchone()
        if hook and hook[0]:
            event = {"user_id": str(user_id), "claims": claims, "authentication_method": "password"}
            with conn.transaction():
                conn.execute("set local role supabase_auth_admin")
                out = conn.execute("select public.custom_access_token_hook(%s)", (Jsonb(event),)).fetchone()
            result = out[0] if out else None
            if not isinstance(result, dict):
                raise StackError("custom_access_token_hook returned no object")
            if "error" in result:
                raise StackError(f"custom_access_token_hook refused the token: {json.dumps(result['error'])}")
            if not isinstance(result.get("claims"), dict):
                raise StackError("custom_access_token_hook output has no claims object")
            claims = result["claims"]
    return encode(claims, settings.jwt_secret)
