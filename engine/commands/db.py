"""``onecard db migrate|url|stop``: the engine's database."""

from __future__ import annotations

import argparse
import asyncio

from engine.config import Config
from engine.output import add_command, emit
from ledger import db


def register(subparsers) -> None:
    group = subparsers.add_parser("db", help="database: migrate, show URL, stop embedded server")
    commands = group.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    add_command(commands, "migrate", "apply pending schema migrations").set_defaults(handler=_migrate)
    add_command(commands, "url", "print the database URL in use").set_defaults(handler=_url)
    add_command(commands, "stop", "stop the embedded PostgreSQL server").set_defaults(handler=_stop)


def _migrate(args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        pool = await db.create_pool(db.database_url(Config.from_env()), size_max=1)
        try:
            async with pool.acquire() as connection:
                return await db.migrate(connection)
        finally:
            await pool.close()

    applied = asyncio.run(run())
    lines = [f"applied {name}" for name in applied] or ["schema is up to date"]
    emit(args, "\n".join(lines), {"applied": applied})
    return 0


def _url(args: argparse.Namespace) -> int:
    url = db.database_url(Config.from_env())
    emit(args, url, {"url": url})
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = db.stop_embedded(Config.from_env().home)
    emit(args, "stopped" if stopped else "not running", {"stopped": stopped})
    return 0
