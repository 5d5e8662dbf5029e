"""Bearer tokens: API keys (`df_key_...`, kept only as SHA-256) and HS256 JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from sluice.errors import Unauthorized

API_KEY_PREFIX = "df_key_"
API_KEY_PATTERN = re.compile(r"^df_key_[A-Za-z0-9_-]{32,200}$")


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def is_api_key(token: str) -> bool:
    return bool(API_KEY_PATTERN.match(token))


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or Unauthorized saying what is wrong."""
    if not authorization or not authorization.strip():
        raise Unauthorized("Missing Authorization header; send 'Authorization: Bearer <API key or JWT>'.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <API key or JWT>'.")
    return token.strip()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict[str, Any], secret: str) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = _b64url(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def decode_jwt(token: str, secret: str, now: float | None = None) -> dict[str, Any]:
    """Verify an HS256 JWT and return its claims; every failure is Unauthorized with a reason."""
    if not secret:
        raise Unauthorized("JWT authentication is not configured on this deployment; use an API key.")
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("Bearer token is neither an API key nor a JWT.")
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unauthorized("JWT is malformed.") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise Unauthorized("JWT must be signed with HS256.")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise Unauthorized("JWT signature is invalid.")
    if not isinstance(claims, dict):
        raise Unauthorized("JWT claims must be a JSON object.")
    missing = [c for c in ("sub", "role", "project", "exp") if c not in claims]
    if missing:
        raise Unauthorized(f"JWT lacks the claims {', '.join(missing)}.")
    exp = claims["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise Unauthorized("JWT claim exp must be a number of seconds since the epoch.")
    if exp <= (time.time() if now is None else now):
        raise Unauthorized("JWT has expired.")
    return claims
