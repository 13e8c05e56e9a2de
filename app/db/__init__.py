"""Database access: named SQL queries (``Q``), the asyncpg pool and the transaction helper."""

from app.db.pool import create_pool, transaction
from app.db.queries import Q, Query

__all__ = ["Q", "Query", "create_pool", "transaction"]
