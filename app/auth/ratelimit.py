"""In-process rate limiting: a sliding-window log per (limit, caller, path), answering 429 with ``Retry-After``.

Why in-process (docs/security.md, "Rate limiting"): no Redis in this stack, and a PostgreSQL counter would add a
write per login and per signal. The trade-off: each API process counts on its own (N processes allow up to N
times the limit) and counts restart empty. The budgets exist to slow guessing and floods, not to meter usage,
so that is acceptable for a single-box deployment; run one API process, or put the limit in the proxy, when a
strict global limit matters.

The window is exact: at most ``limit`` accepted requests in any ``window_s`` seconds, and ``Retry-After`` is the
time until the oldest of them leaves the window. Refused requests are not recorded, so a client that keeps
retrying gets in as soon as its budget frees up instead of being locked out for good.

Use from a route:

* ``guards=[rate_limit_guard(LOGIN)]`` runs before authentication and body parsing, keyed on client IP + path
  (login, refresh, anything public);
* ``dependencies={"principal": scoped("signals", rate_limit=SIGNAL_INGEST)}`` or
  ``jwt_only(rate_limit=WALLET_OPS)`` counts after authentication, keyed on the API key id (``key="principal"``)
  or the client IP, plus the path (the reference's order: authenticate, then limit);
* ``await enforce_rate_limit(request, limit, principal)`` anywhere else.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from app.api.errors import ApiError
from app.metrics import AUTH_EVENTS_TOTAL

T = TypeVar("T")

if TYPE_CHECKING:
    from app.api.auth import Principal


@dataclass(frozen=True)
class RateLimit:
    name: str
    limit: int
    window_s: float
    message: str
    # "ip": the client IP; "principal": the API key's id when a key calls, else the client IP; "user": the
    # authenticated user (any credential), else the client IP.
    key: Literal["ip", "principal", "user"] = "ip"
    per_path: bool = True  # False: one budget for every route using this limit, not one per request path


# The reference's budgets (api.md §16).
LOGIN = RateLimit("login", 5, 60, "Too many login attempts. Please try again later.")
REFRESH = RateLimit("refresh", 10, 60, "Too many token refresh attempts. Please try again later.")
# Not in the reference (its register route was not mounted): each registration costs an argon2 hash and a row.
REGISTER = RateLimit("register", 5, 60, "Too many registration attempts. Please try again later.")
WALLET_OPS = RateLimit("wallet_ops", 5, 60, "Too many wallet operations. Please try again later.")
DATA_SOURCES = RateLimit("data_sources", 30, 60, "Too many requests. Please try again later.")
SIGNAL_INGEST = RateLimit(
    "signal_ingest", 120, 60, "Rate limit exceeded. Maximum 120 requests per minute.", key="principal"
)
# Not in the reference (api.md §25.5 #21: trades and closes were unlimited): one budget per user for buying and
# closing by hand, generous for a person or a script, a stop for a runaway loop queueing trades.
MANUAL_TRADES = RateLimit(
    "manual_trades", 60, 60, "Too many trade requests. Please try again later.", key="user", per_path=False
)
# Not in the reference (api.md §25.5): credentials that fail verification (a bad signature, an unknown API key),
# per client IP across every route. Past the budget, any request presenting a credential from that IP is refused
# before it is verified, so a flood of guesses costs no database lookups. Expired, revoked and missing
# credentials do not count: a stale client polling with them is not guessing.
INVALID_CREDENTIALS = RateLimit(
    "invalid_credentials", 30, 60, "Too many invalid credentials. Please try again later.", per_path=False
)


def _wait(bucket: deque[float], limit: RateLimit, now: float) -> int | None:
    """Forget the bucket's requests that left the window; None when one more fits, else the whole seconds until
    the oldest one leaves."""
    horizon = now - limit.window_s
    while bucket and bucket[0] <= horizon:
        bucket.popleft()
    if len(bucket) >= limit.limit:
        return max(1, math.ceil(bucket[0] - horizon))
    return None


@dataclass
class SlidingWindowLimiter:
    clock: Callable[[], float] = time.monotonic
    sweep_every: int = 1000
    _hits: dict[tuple[str, str, str], deque[float]] = field(default_factory=dict)
    _windows: dict[str, float] = field(default_factory=dict)
    _calls: int = 0

    def waiting(self, limit: RateLimit, caller: str, path: str) -> int | None:
        """Like :meth:`hit` without recording anything: None when one more would fit, else the seconds to wait."""
        bucket = self._hits.get((limit.name, caller, path))
        return None if not bucket else _wait(bucket, limit, self.clock())

    def hit(self, limit: RateLimit, caller: str, path: str) -> int | None:
        """Record one request; None when allowed, else the whole seconds to wait before the next one fits."""
        now = self.clock()
        self._calls += 1
        if self._calls % self.sweep_every == 0:
            self._sweep(now)
        self._windows[limit.name] = limit.window_s
        bucket = self._hits.setdefault((limit.name, caller, path), deque())
        retry_after = _wait(bucket, limit, now)
        if retry_after is None:
            bucket.append(now)
        return retry_after

    def _sweep(self, now: float) -> None:
        """Forget callers whose newest request left every window (bounded memory under many distinct IPs)."""
        stale = [key for key, bucket in self._hits.items() if not bucket or bucket[-1] <= now - self._windows[key[0]]]
        for key in stale:
            del self._hits[key]

    def reset(self) -> None:
        self._hits.clear()


def client_ip(connection: ASGIConnection, trusted_proxies: int) -> str:
    """The caller's address: the socket peer, or with N trusted proxies the N-th ``X-Forwarded-For`` hop from
    the right (the address the outermost trusted proxy saw). Entries left of that are client-controlled."""
    peer = connection.client.host if connection.client else "unknown"
    if trusted_proxies <= 0:
        return peer
    forwarded = [part.strip() for part in connection.headers.get("x-forwarded-for", "").split(",") if part.strip()]
    chain = [*forwarded, peer]
    return chain[-(trusted_proxies + 1)] if len(chain) > trusted_proxies else chain[0]


def _limiter(connection: ASGIConnection) -> SlidingWindowLimiter:
    from app.auth.runtime import auth_runtime

    return auth_runtime(connection.app.state).limiter


def rate_limited(limit: RateLimit, retry_after: int) -> ApiError:
    """The 429 envelope every limit answers with."""
    AUTH_EVENTS_TOTAL.labels(f"rate_limited_{limit.name}").inc()
    return ApiError(
        429,
        limit.message,
        "RATE_LIMITED",
        headers={
            "Retry-After": str(retry_after),
            "RateLimit-Limit": str(limit.limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(retry_after),
        },
        retryAfter=retry_after,
    )


async def enforce_rate_limit(connection: ASGIConnection, limit: RateLimit, principal: Principal | None = None) -> None:
    """Count this request against ``limit``; raise the 429 envelope when the budget is spent."""
    if limit.key == "principal" and principal is not None and principal.api_key_id is not None:
        caller = f"key:{principal.api_key_id}"
    elif limit.key == "user" and principal is not None:
        caller = f"user:{principal.user_id}"
    else:
        caller = "ip:" + client_ip(connection, connection.app.state.settings.trusted_proxies)
    path = connection.url.path if limit.per_path else "*"
    retry_after = _limiter(connection).hit(limit, caller, path)
    if retry_after is not None:
        raise rate_limited(limit, retry_after)


def rate_limit_guard(limit: RateLimit) -> Callable[[ASGIConnection, BaseRouteHandler], object]:
    """A Litestar guard counting by client IP + path, before authentication and body parsing."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        await enforce_rate_limit(connection, limit)

    guard.rate_limit = limit  # type: ignore[attr-defined]  # lets tests audit which routes are limited
    return guard


async def guard_credentials(connection: ASGIConnection, verify: Callable[[], Awaitable[T]]) -> T:
    """Run ``verify`` (a credential check) unless this client IP spent its :data:`INVALID_CREDENTIALS` budget;
    count it when it fails as a guess (an :class:`ApiError` marked ``invalid_credential``)."""
    limiter = _limiter(connection)
    caller = "ip:" + client_ip(connection, connection.app.state.settings.trusted_proxies)
    retry_after = limiter.waiting(INVALID_CREDENTIALS, caller, "*")
    if retry_after is not None:
        raise rate_limited(INVALID_CREDENTIALS, retry_after)
    try:
        return await verify()
    except ApiError as exc:
        if getattr(exc, "invalid_credential", False):
            limiter.hit(INVALID_CREDENTIALS, caller, "*")
        raise
