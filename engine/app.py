"""The aiohttp application factory, used by ``onecard serve`` and by the tests.

:func:`create_app` takes ready :class:`~engine.api.routes.Services` (tests build them
around their own database); :func:`open_services` builds the real ones from the
configuration: database pool (migrations applied), key service, ledger, fare engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiohttp import web

from engine.alerts import AlertThresholds
from engine.api.metrics import Metrics
from engine.api.routes import BODY_BYTES_MAX, SERVICES, Services, add_routes, errors_and_auth
from engine.config import Config
from engine.taps.batcher import FLUSH_DELAY_MS, FLUSH_SIZE_MAX
from engine.taps.devices import REFRESH_MS, DeviceRegistry
from engine.taps.intake import WireIntake
from engine.taps.keys import IssuerKeys
from engine.taps.posting import LedgerPosting
from engine.taps.pricing import FarePricing
from engine.taps.service import TapService

POOL_SIZE_PER_WORKER = 8


@dataclass(frozen=True)
class TapSettings:
    """Hot-path settings: ``flush_size_max=1`` turns batching off (one transaction per tap).

    ``fare_config``: a fare engine TOML (default: the packaged Chengdu demo); ``shared_data``:
    the reference data folder it may name as ``{shared_data}``; ``alert_thresholds``: the
    abnormal-usage alert thresholds (default: :class:`engine.alerts.AlertThresholds`'s).
    """

    flush_size_max: int = FLUSH_SIZE_MAX
    flush_delay_ms: float = FLUSH_DELAY_MS
    fare_config: Path | None = None
    shared_data: Path | None = None
    alert_thresholds: AlertThresholds | None = None


def build_services(pool: asyncpg.Pool, key_service, settings: TapSettings) -> Services:
    """Services over an open pool and key service (nothing is read yet)."""
    from engine.disbursement.store import DisbursementStore
    from engine.fares.config import load_engine
    from ledger.service import Ledger

    shared_data = settings.shared_data or default_shared_data()
    pricing = FarePricing(load_engine(settings.fare_config, shared_data=shared_data),
                          settings.alert_thresholds)
    metrics = Metrics()
    issuer_keys = IssuerKeys(pool, key_service)
    taps = TapService(pool, keys=issuer_keys, ledger=LedgerPosting(Ledger(pool)),
                      intake=WireIntake(), price=pricing.price, detect=pricing.detect,
                      metrics=metrics, flush_size_max=settings.flush_size_max,
                      flush_delay_ms=settings.flush_delay_ms)
    return Services(pool=pool, devices=DeviceRegistry(pool, sealer=key_service),
                    issuer_keys=issuer_keys, taps=taps, metrics=metrics,
                    disbursement=DisbursementStore(pool, key_service))


def default_shared_data() -> Path:
    """``../shared/data`` beside the working directory's checkout (as the tests find it)."""
    return Path.cwd().resolve().parent / "shared" / "data"


@contextlib.asynccontextmanager
async def open_services(config: Config, settings: TapSettings = TapSettings()):
    """Open the database (migrated), the key service and the fare engine; yield Services.

    Raises
    ------
    ledger.errors.DatabaseError, hsm.errors.HsmError, engine.fares.errors.FareRulesError
        A dependency cannot be opened (the message says which and why).
    """
    from hsm.service import open_key_service
    from ledger import db

    pool = await db.open_database(config, size_max=POOL_SIZE_PER_WORKER)
    key_service = open_key_service(config)
    try:
        yield build_services(pool, key_service, settings)
    finally:
        await key_service.close()
        await pool.close()


def create_app(services: Services) -> web.Application:
    """An application serving the whole API over ``services``.

    On startup the device keys and the issuer keys are loaded, then refreshed every
    ``REFRESH_MS`` in the background; on cleanup the tap batcher is drained (the pool
    and the key service belong to the caller).
    """
    app = web.Application(middlewares=[errors_and_auth], client_max_size=BODY_BYTES_MAX)
    app[SERVICES] = services
    add_routes(app)

    async def refresh() -> None:
        await services.devices.refresh()
        await services.issuer_keys.refresh()

    async def refresh_forever() -> None:
        while True:
            await asyncio.sleep(REFRESH_MS / 1000)
            try:
                await refresh()
            except (OSError, asyncpg.PostgresError):
                continue  # the database is away: keep the keys we have, try again

    async def lifecycle(app: web.Application):
        await refresh()
        refresher = asyncio.ensure_future(refresh_forever())
        yield
        refresher.cancel()
        await asyncio.gather(refresher, return_exceptions=True)
        await services.taps.close()

    app.cleanup_ctx.append(lifecycle)
    return app
