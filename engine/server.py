"""Running the engine: one worker process per core on one port (``SO_REUSEPORT``).

The parent process first checks that the port is free (a plain bind, without
``SO_REUSEPORT``: with it, a second server would silently share the first one's port),
resolves the database (starting the embedded server if needed), applies migrations once,
reserves the port by binding (not listening) a reuse-port socket, and starts the workers. Each worker binds and listens on the same port with
``SO_REUSEPORT``, so the kernel spreads connections over them; each has its own uvloop
event loop, database pool, key service and tap batcher. Prometheus values of all workers
are aggregated through ``PROMETHEUS_MULTIPROC_DIR`` (a temporary folder).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass

from engine.app import TapSettings
from engine.errors import AddressInUseError

WORKERS_MAX = 64
READY_TIMEOUT_S = 120.0
BACKLOG = 1024


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    settings: TapSettings


def reuse_port_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (listening if asked)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def free_port(host: str, port: int) -> int:
    """``port`` (0: a free one the kernel picks) if nothing is bound to ``host:port``.

    A plain bind (no ``SO_REUSEPORT``) fails while any socket, reuse-port or not, holds
    the port; ``SO_REUSEADDR`` still lets a port in TIME_WAIT be taken again.

    Raises
    ------
    AddressInUseError
        Another process (e.g. a running ``onecard serve``) holds ``host:port``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise AddressInUseError(f"--port {port}: address in use on {host} "
                                    "(another onecard serve or program listens there)") from None
        return probe.getsockname()[1]


def serve(options: ServeOptions, *, announce=print) -> int:
    """Run the server until SIGINT or SIGTERM; return the exit code.

    ``announce`` gets one line ``listening on http://HOST:PORT (N workers)`` once every
    worker accepts connections.

    Raises
    ------
    AddressInUseError
        ``options.host:port`` is taken (nothing was started).
    ledger.errors.DatabaseError
        The database cannot be started, reached or migrated.
    """
    assert 1 <= options.workers <= WORKERS_MAX
    from engine.config import Config
    from ledger import db

    free_port(options.host, options.port)
    config = Config.from_env()
    url = db.database_url(config)
    asyncio.run(_migrate(url))
    # Checked again on the port actually reserved: another server may have started while
    # the migrations ran.
    reserved = reuse_port_socket(options.host, free_port(options.host, options.port), listen=False)
    port = reserved.getsockname()[1]
    metrics_folder = tempfile.TemporaryDirectory(prefix="onecard-metrics-")
    # Spawned workers inherit the environment: set before they start, it is in place
    # before they import prometheus_client (which picks its value store on import).
    os.environ.update({"ONECARD_DATABASE_URL": url, "PROMETHEUS_MULTIPROC_DIR": metrics_folder.name})
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    workers = [context.Process(target=_worker, name=f"onecard-worker-{n}",
                               args=(options, port, ready))
               for n in range(options.workers)]
    for worker in workers:
        worker.start()
    stop = _stop_on_signals()
    try:
        for _ in workers:
            status = ready.get(timeout=READY_TIMEOUT_S)
            if status != "ready":
                print(f"onecard: worker failed to start: {status}", file=sys.stderr)
                return 1
        announce(f"listening on http://{options.host}:{port} ({options.workers} workers)")
        sys.stdout.flush()
        while not stop.is_set() and all(worker.is_alive() for worker in workers):
            stop.wait(0.5)
        return 0 if stop.is_set() else 1
    finally:
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(timeout=10)
        reserved.close()
        metrics_folder.cleanup()


async def _migrate(url: str) -> None:
    from ledger import db

    pool = await db.create_pool(url, size_max=1)
    try:
        async with pool.acquire() as connection:
            await db.migrate(connection)
    finally:
        await pool.close()


def _stop_on_signals():
    import threading

    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    return stop


def _worker(options: ServeOptions, port: int, ready) -> None:
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        uvloop.run(_run_worker(options, port, ready))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which exits non-zero
        ready.put(f"{error.__class__.__name__}: {error}")


async def _run_worker(options: ServeOptions, port: int, ready) -> None:
    from aiohttp import web

    from engine.app import create_app, open_services
    from engine.config import Config

    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    async with open_services(Config.from_env(), options.settings) as services:
        runner = web.AppRunner(create_app(services), access_log=None)
        await runner.setup()
        try:
            sock = reuse_port_socket(options.host, port, listen=True)
            await web.SockSite(runner, sock).start()
            # Everything loaded so far (modules, fare tables, keys) lives as long as the
            # worker: frozen out of the collector, full collections no longer walk it on
            # the hot path (fewer pauses in the tap latency tail).
            gc.collect()
            gc.freeze()
            ready.put("ready")
            await stopped.wait()
        finally:
            await runner.cleanup()
