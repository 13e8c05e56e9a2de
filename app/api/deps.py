"""Dependencies shared by handlers, and the annotations handlers request them with.

The pool and the settings live on the application state; ``principal`` is provided per route by
``app.api.auth.jwt_only()`` / ``scoped(...)``. Handlers mark every injected value explicitly (Litestar 3 no
longer infers a dependency from a parameter's name alone)::

    async def handler(principal: PrincipalDep, pool: PoolDep, settings: SettingsDep) -> ...
"""

from __future__ import annotations

import asyncpg
from litestar.datastructures import State
from litestar.di import NamedDependency

from app.api.auth import Principal
from app.config import Settings

__all__ = ["PoolDep", "PrincipalDep", "SettingsDep", "provide_pool", "provide_settings"]

PoolDep = NamedDependency[asyncpg.Pool]
SettingsDep = NamedDependency[Settings]
PrincipalDep = NamedDependency[Principal]


def provide_pool(state: State) -> asyncpg.Pool:
    return state.pool


def provide_settings(state: State) -> Settings:
    return state.settings
