"""Running settlement work from the CLI: open the configured database, run, close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from engine.config import Config
from engine.settlement.pki import Pki
from ledger import db
from ledger.service import Ledger

T = TypeVar("T")


def pki_store(config: Config | None = None) -> Pki:
    """The engine's PKI folder, ``ONECARD_HOME/pki``."""
    return Pki((config or Config.from_env()).home / "pki")


def reports_folder(config: Config | None = None) -> Path:
    """Where cycle reports are written, ``ONECARD_HOME/reports``."""
    return (config or Config.from_env()).home / "reports"


def run_with_database(work: Callable[[asyncpg.Pool, Ledger], Awaitable[T]]) -> T:
    """Open the configured database (migrated), run ``work(pool, ledger)``, close; return its result."""
    async def run() -> T:
        pool = await db.open_database(Config.from_env(), size_max=4)
        try:
            return await work(pool, Ledger(pool))
        finally:
            await pool.close()

    return asyncio.run(run())
