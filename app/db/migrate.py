"""yoyo migrations: apply under yoyo's lock (so concurrent starters apply once), list pending, roll back."""

from __future__ import annotations

import logging

from yoyo import get_backend, read_migrations

from app.db.embedded import yoyo_url
from app.paths import resource_dir

log = logging.getLogger(__name__)
LOCK_TIMEOUT_S = 120  # yoyo's CLI default of 10 s is shorter than a long migration


def _migrations():
    return read_migrations(str(resource_dir("migrations")))


def apply_migrations(dsn: str) -> list[str]:
    """Apply pending migrations; returns the ids applied by this call."""
    backend = get_backend(yoyo_url(dsn))
    try:
        migrations = _migrations()
        with backend.lock(timeout=LOCK_TIMEOUT_S):
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        applied = [m.id for m in pending]
        if applied:
            log.info("migrations applied", extra={"fields": {"ids": ",".join(applied)}})
        return applied
    finally:
        backend.connection.close()


def pending_migrations(dsn: str) -> list[str]:
    backend = get_backend(yoyo_url(dsn))
    try:
        return [m.id for m in backend.to_apply(_migrations())]
    finally:
        backend.connection.close()


def all_migration_ids() -> list[str]:
    return [m.id for m in _migrations()]


def rollback_migrations(dsn: str, count: int | None = None) -> list[str]:
    """Roll back the newest ``count`` applied migrations (all when None); returns their ids."""
    backend = get_backend(yoyo_url(dsn))
    try:
        with backend.lock(timeout=LOCK_TIMEOUT_S):
            to_rollback = backend.to_rollback(_migrations())
            if count is not None:
                to_rollback = to_rollback[:count]
            backend.rollback_migrations(to_rollback)
        return [m.id for m in to_rollback]
    finally:
        backend.connection.close()
