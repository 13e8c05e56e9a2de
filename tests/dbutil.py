"""Test database plumbing: one migrated template per test session, one clone of it per test module."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def admin_database_url() -> str:
    """TEST_DATABASE_URL, else DATABASE_URL, else an embedded server under .data/test (fresh machines)."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    from app.db.embedded import embedded_database_url

    return embedded_database_url(PROJECT_ROOT / ".data" / "test")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
