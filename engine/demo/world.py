"""Step 1: the demo's own state and its participants.

Every run gets a fresh database ``onecard_demo_<UTC time>_<pid>`` on the configured
PostgreSQL server (the embedded one by default) and a fresh soft key store in a temporary
folder; the databases of earlier demo runs are dropped (only those: other data on the
server is left alone). Banks deliver by ``push`` to their simbank's loopback URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from adapters.simbank import SimBank
from engine.config import Config
from engine.settlement import registry
from hsm.service import KeyService, open_key_service
from hsm.soft import SoftKeyService
from ledger import db
from ledger.service import Ledger

DATABASE_PREFIX = "onecard_demo_"
ENGINE_KEY_ID = "ONECARD"
# The partner banks: Sichuan card issuers of the synthetic population (engine.synthetic).
PARTNER_BANKS = {"ICBC": "ICBC Sichuan Branch", "CCB": "CCB Sichuan Branch", "ABC": "ABC Sichuan Branch"}
METRO_BANK, BUS_BANK, SUBSIDY_BANK, EMPLOYER_BANK = "CCB", "ABC", "ICBC", "CCB"
NET_DEBIT_CAP_MINOR = 50_000_000  # 500,000 yuan per bank and cycle
POOL_SIZE = 8


@dataclass
class World:
    """What the steps share: connection pool, ledger, key service, simbanks, participants."""

    config: Config
    pool: asyncpg.Pool
    ledger: Ledger
    key_service: KeyService
    simbanks: dict[str, SimBank]
    engine_key: bytes
    database_name: str
    accounts: dict[str, int] = field(default_factory=dict)  # participant -> ledger account

    @property
    def database_url(self) -> str:
        """The URL of this run's database (always set: ``open_world`` creates it)."""
        return self.config.database_url or ""


@contextlib.asynccontextmanager
async def open_world(base: Config) -> AsyncIterator[World]:
    """A fresh database and key store, three running simbanks; torn down on exit (the
    database is kept until the next run, for inspection)."""
    server_url = db.database_url(base)
    name = f"{DATABASE_PREFIX}{dt.datetime.now(dt.timezone.utc):%Y%m%d%H%M%S}_{os.getpid()}"
    await _recreate(server_url, name)
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    with tempfile.TemporaryDirectory(prefix="onecard-demo-") as home:
        config = Config(home=Path(home), database_url=url)
        SoftKeyService.init(config.home / "keys")
        key_service = open_key_service(config, backend="soft")
        pool = await db.open_database(config, size_max=POOL_SIZE)
        engine_key = secrets.token_bytes(32)
        simbanks = {code: SimBank(code, keys={ENGINE_KEY_ID: engine_key}) for code in PARTNER_BANKS}
        try:
            for simbank in simbanks.values():
                await simbank.start()
            yield World(config, pool, Ledger(pool), key_service, simbanks, engine_key, name)
        finally:
            for simbank in simbanks.values():
                await simbank.stop()
            await pool.close()
            await key_service.close()


async def add_participants(world: World) -> dict[str, int]:
    """Register the banks (push delivery to their simbank), the metro and bus operators,
    the subsidy fund and the employer; return their ledger accounts by name."""
    for code, name in PARTNER_BANKS.items():
        bank = await registry.add_bank(world.pool, world.ledger, code, name,
                                       net_debit_cap_minor=NET_DEBIT_CAP_MINOR, delivery="push",
                                       endpoint=world.simbanks[code].url,
                                       statement_account=world.simbanks[code].settlement_account)
        world.accounts[f"bank:{code}"] = bank.settlement_account_id
    world.accounts["metro"] = await registry.add_operator(world.pool, world.ledger, "metro", METRO_BANK)
    world.accounts["bus"] = await registry.add_operator(world.pool, world.ledger, "bus", BUS_BANK)
    world.accounts["subsidy-fund"] = await registry.add_payer(world.pool, world.ledger, "subsidy-fund",
                                                              SUBSIDY_BANK, kind="funding")
    world.accounts["employer"] = await registry.add_payer(world.pool, world.ledger, "employer",
                                                          EMPLOYER_BANK, kind="wage")
    return dict(world.accounts)


async def _recreate(server_url: str, name: str) -> None:
    """Drop earlier demo databases (not in use), create ``name``."""
    admin = await asyncpg.connect(server_url)
    try:
        old = await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1",
                                DATABASE_PREFIX.replace("_", r"\_") + "%")
        for row in old:
            with contextlib.suppress(asyncpg.ObjectInUseError):
                await admin.execute(f'DROP DATABASE "{row["datname"]}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
