"""JWTs: HS256 access tokens (15 min) and refresh tokens (24 h, 30 days with remember-me).

Claims are the reference's (``userId``, ``email``, ``type``, ``jti``, ``iat``, ``exp``) plus ``iss``/``aud`` (a
token signed with the same secret for another purpose is refused) and ``sid``, the login session the token
belongs to: revoking the session (logout, refresh-token reuse, admin password reset) revokes its access tokens
too. ``type`` is checked both ways: a refresh token is never accepted as an access token, nor the reverse.

Verifying an HS256 token with PyJWT costs ~55 µs (most of it PyJWT's base64 character check), more than the rest
of a cached request's authentication. Verification is a pure function of (secret, token bytes) until ``exp``, so
access tokens that verified are remembered by their exact string: a later presentation of the same string only
re-checks ``exp`` against the clock. Any other string (one altered character) is verified in full.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(hours=24)
REFRESH_TTL_REMEMBER_ME = timedelta(days=30)
JWT_ALGORITHM = "HS256"
ISSUER = "nexgent"
AUDIENCE = "nexgent-api"

TokenType = Literal["access", "refresh"]


class TokenError(Exception):
    """A token that must be refused; ``reason`` is ``expired``, ``invalid`` or ``type``."""

    def __init__(self, reason: Literal["expired", "invalid", "type"]) -> None:
        super().__init__(reason)
        self.reason = reason


def _claims(
    user_id: uuid.UUID, email: str, token_type: TokenType, jti: uuid.UUID, now: datetime, expires_at: datetime
) -> dict[str, Any]:
    return {
        "userId": str(user_id),
        "email": email,
        "type": token_type,
        "jti": str(jti),
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }


def issue_access_token(
    secret: str,
    user_id: uuid.UUID,
    email: str,
    *,
    now: datetime | None = None,
    session_id: uuid.UUID | None = None,
    jti: uuid.UUID | None = None,
) -> str:
    now = now or datetime.now(UTC)
    claims = _claims(user_id, email, "access", jti or uuid.uuid4(), now, now + ACCESS_TTL)
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def issue_refresh_token(
    secret: str,
    user_id: uuid.UUID,
    email: str,
    *,
    jti: uuid.UUID,
    session_id: uuid.UUID,
    expires_at: datetime,
    now: datetime | None = None,
) -> str:
    claims = _claims(user_id, email, "refresh", jti, now or datetime.now(UTC), expires_at)
    claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


VERIFIED_ACCESS_TOKENS_MAX = 10_000
_verified_access: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()


def read_token(secret: str, token: str, expected_type: TokenType) -> dict[str, Any]:
    """Verified claims, with ``userId``, ``jti`` and (when present) ``sid`` parsed to UUIDs; else TokenError."""
    if expected_type == "access":
        claims = _verified_access.get((secret, token))
        if claims is not None and time.time() < claims["exp"]:  # PyJWT's own rule with leeway 0
            _verified_access.move_to_end((secret, token))
            return dict(claims)
    claims = _verify(secret, token, expected_type)
    if expected_type == "access":
        _verified_access[(secret, token)] = dict(claims)
        while len(_verified_access) > VERIFIED_ACCESS_TOKENS_MAX:
            _verified_access.popitem(last=False)
    return claims


def _verify(secret: str, token: str, expected_type: TokenType) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "jti", "iss", "aud"]},
            leeway=0,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.PyJWTError:
        raise TokenError("invalid") from None
    if not claims.get("userId") or not claims.get("email") or not claims.get("type"):
        raise TokenError("invalid")
    if claims["type"] != expected_type:
        raise TokenError("type")
    try:
        claims["userId"] = uuid.UUID(str(claims["userId"]))
        claims["jti"] = uuid.UUID(str(claims["jti"]))
        claims["sid"] = uuid.UUID(str(claims["sid"])) if claims.get("sid") else None
    except ValueError:
        raise TokenError("invalid") from None
    return claims
