"""The aiohttp application factory, used by ``onecard serve`` and by the tests.

:func:`create_app` takes ready :class:`~engine.api.routes.Services` (tests build them
around their own database); :func:`open_services` builds the real ones from the
configuration: database pool (migrations applied), key service, ledger, fare engine.
"""

from __future__ import annotations

from aiohttp import web

from engine.api.routes import BODY_BYTES_MAX, SERVICES, Services, add_routes, errors_and_auth


def create_app(services: Services) -> web.Application:
    """An application serving the whole API over ``services``.

    On startup the device keys are loaded and refreshed in the background; on cleanup
    the tap batcher is drained and the refresher stopped (the pool is the caller's).
    """
    app = web.Application(middlewares=[errors_and_auth], client_max_size=BODY_BYTES_MAX)
    app[SERVICES] = services
    add_routes(app)

    async def start(app: web.Application) -> None:
        await services.devices.refresh()
        services.devices.start()

    async def stop(app: web.Application) -> None:
        await services.taps.close()
        await services.devices.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
