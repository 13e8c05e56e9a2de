"""Per-process authentication state, kept on the application state (one per app, so test apps never share it).

``clock`` decides lockouts; tests replace it (``auth_runtime(app.state).clock = ...``) to move time forward.
Tokens always use real time because PyJWT checks ``iat``/``exp`` against the system clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from litestar.datastructures import State

from app.auth.access_tokens import AccessTokenCache
from app.auth.keys import ApiKeyVerifier
from app.auth.passwords import PasswordHasher
from app.auth.ratelimit import SlidingWindowLimiter
from app.config import Settings

STATE_KEY = "auth_runtime"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AuthRuntime:
    passwords: PasswordHasher
    api_keys: ApiKeyVerifier
    access_tokens: AccessTokenCache
    limiter: SlidingWindowLimiter = field(default_factory=SlidingWindowLimiter)
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthRuntime:
        return cls(
            passwords=PasswordHasher(
                time_cost=settings.argon2_time_cost,
                memory_cost=settings.argon2_memory_cost,
                parallelism=settings.argon2_parallelism,
            ),
            api_keys=ApiKeyVerifier(ttl_s=settings.api_key_cache_ttl_s),
            access_tokens=AccessTokenCache(ttl_s=settings.api_key_cache_ttl_s),
        )


def auth_runtime(state: State) -> AuthRuntime:
    runtime = state.get(STATE_KEY)
    if runtime is None:
        runtime = AuthRuntime.from_settings(state.settings)
        state[STATE_KEY] = runtime
    return runtime
