"""The database layer: migrations apply once, in order, and are recorded."""

import asyncpg

from engine.config import Config
from ledger import db


async def test_migrate_is_idempotent(db_url):
    connection = await asyncpg.connect(db_url)
    try:
        assert await db.migrate(connection) == []
        recorded = await connection.fetch("SELECT package, version FROM schema_migrations")
        expected = {(m.package, m.version) for m in db.migrations()}
        assert {(r["package"], r["version"]) for r in recorded} == expected
    finally:
        await connection.close()


def test_external_url_wins_over_embedded():
    config = Config.from_env({"ONECARD_DATABASE_URL": "postgresql://h/x", "ONECARD_HOME": "/nope"})
    assert db.database_url(config) == "postgresql://h/x"
