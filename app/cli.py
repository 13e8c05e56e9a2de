"""``nexgent`` command line: up, serve, worker, migrate, audit, unlock."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from app.config import ConfigError, Settings, load_settings
from app.logs import setup_logging

log = logging.getLogger("app.cli")


def _database_url(settings: Settings) -> str:
    from app.db.embedded import resolve_database_url

    return resolve_database_url(settings.database_url, settings.data_dir)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from app.db.migrate import apply_migrations, rollback_migrations

    url = _database_url(settings)
    if args.rollback is not None:
        ids = rollback_migrations(url, None if args.rollback == 0 else args.rollback)
        print(f"rolled back {len(ids)} migration(s): {', '.join(ids) or '-'}")
    else:
        ids = apply_migrations(url)
        print(f"applied {len(ids)} migration(s): {', '.join(ids) or 'database is current'}")
    return 0


def _serve(settings: Settings, url: str) -> None:
    import uvicorn

    from app.api.app import create_app

    config = uvicorn.Config(
        create_app(settings, url),
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws_max_size=65_536,  # the WebSocket accepts small JSON control messages only
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    _serve(settings, _database_url(settings))
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from app.worker.main import main as worker_main

    worker_main(settings, _database_url(settings))
    return 0


def _die_with_parent() -> None:
    """In the worker child: ask Linux to SIGTERM it if ``nexgent up`` dies, even by SIGKILL, so no orphan trades on."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the supervisor's stop() still terminates the child on a normal exit


class _WorkerSupervisor(threading.Thread):
    """Runs ``nexgent worker`` as a child process and restarts it if it dies, until stopped."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True, name="worker-supervisor")
        self.env = {**os.environ, "DATABASE_URL": database_url}
        self.stopping = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"], env=self.env, preexec_fn=_die_with_parent
            )
            code = self.proc.wait()
            # Exit code 0 means the worker was asked to stop (SIGTERM to the process group): don't fight it.
            if self.stopping.is_set() or code == 0:
                return
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
            log.error("worker exited; restarting", extra={"fields": {"exit_code": code, "in_s": backoff}})
            self.stopping.wait(backoff)

    def stop(self) -> None:
        self.stopping.set()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from app.db.migrate import apply_migrations

    url = _database_url(settings)
    apply_migrations(url)
    # uvicorn re-raises the SIGTERM/SIGINT it handled once it has shut down; with the default handler that
    # kills this process before the finally below stops the worker and the embedded database. Exiting
    # through SystemExit instead lets the cleanup run.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    supervisor = _WorkerSupervisor(url)
    supervisor.start()
    log.info("serving", extra={"fields": {"url": f"http://{settings.host}:{settings.port}/api/v1/health"}})
    try:
        _serve(settings, url)
    finally:
        supervisor.stop()
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from app.audit import run_audit
    from app.db import create_pool

    async def audit() -> list:
        pool = await create_pool(_database_url(settings), min_size=1, max_size=2)
        try:
            return await run_audit(pool)
        finally:
            await pool.close()

    findings = asyncio.run(audit())
    for finding in findings:
        print(finding)
    print(f"audit: {len(findings)} finding(s)")
    return 1 if findings else 0


def cmd_unlock(settings: Settings, args: argparse.Namespace) -> int:
    """Lift a login lockout now (the owner of a locked admin account, or a user an attacker keeps locked)."""
    import asyncio

    import asyncpg

    from app.auth.accounts import email_digest, normalise_email
    from app.db import Q

    email = normalise_email(args.email)

    async def unlock() -> tuple[bool, bool]:
        conn = await asyncpg.connect(_database_url(settings))
        try:
            row = await Q.auth_operator_unlock.fetch_one(conn, email, email_digest(email))
        finally:
            await conn.close()
        assert row is not None
        return row["account"], row["throttle"]

    account, throttle = asyncio.run(unlock())
    if not account and not throttle:
        print(f"unlock: no account and no failed logins for {email}")
        return 1
    print(f"unlock: {email}: failed logins cleared, lockout lifted" + ("" if account else " (no such account)"))
    return 0


COMMANDS = {
    "migrate": cmd_migrate,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "up": cmd_up,
    "audit": cmd_audit,
    "unlock": cmd_unlock,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexgent", description="Signal-driven Solana trading engine")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="migrate, then run the API and the worker together (the newcomer's command)")
    sub.add_parser("serve", help="run the HTTP API")
    sub.add_parser("worker", help="run the trading worker")
    sub.add_parser("audit", help="check the ledger invariants (exit 1 when anything is inconsistent)")
    unlock = sub.add_parser("unlock", help="lift the login lockout of an e-mail address (operator override)")
    unlock.add_argument("email")
    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.add_argument("--rollback", type=int, metavar="N", help="roll back the newest N migrations (0 = all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"nexgent: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format, settings.is_production)
    return COMMANDS[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
