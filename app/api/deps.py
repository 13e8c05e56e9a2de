"""Dependencies shared by handlers: the pool and the settings live on the application state."""

from __future__ import annotations

import asyncpg
from litestar.datastructures import State

from app.config import Settings


def provide_pool(state: State) -> asyncpg.Pool:
    return state.pool


def provide_settings(state: State) -> Settings:
    return state.settings
