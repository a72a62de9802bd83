"""HS256 JSON Web Tokens, as Supabase Auth issues and PostgREST verifies them (stdlib only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

__all__ = ["TokenError", "encode", "decode"]


class TokenError(ValueError):
    """A token that is malformed, unsigned, signed with another secret, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], secret: str) -> str:
    """Sign ``claims`` with HS256."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"


def decode(token: str, secret: str, *, now: float | None = None) -> dict[str, Any]:
    """Verify an HS256 token and return its claims; raise :class:`TokenError` otherwise.

    Only HS256 is accepted: ``alg: none`` and every other algorithm are refused, whatever the
    signature part holds.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("Expected 3 parts in JWT; got %d" % len(parts))
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        sig = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("JWSError (CompactDecodeError Invalid number of parts)") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("JWSError (CompactDecodeError Invalid number of parts)")
    if header.get("alg") != "HS256":
        raise TokenError("JWSError JWSInvalidSignature: unsupported alg %r" % header.get("alg"))
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, sig):
        raise TokenError("JWSError JWSInvalidSignature")
    exp = claims.get("exp")
    if exp is not None:
        if not isinstance(exp, (int, float)):
            raise TokenError("JWT exp claim is not a number")
        if (time.time() if now is None else now) >= exp:
            raise TokenError("JWT expired")
    return claims
