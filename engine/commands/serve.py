"""``onecard serve``: run the engine's HTTP API (one worker process per core)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from engine.arguments import integer_in, port
from engine.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the HTTP API (taps, deny list, alerts, metrics, OpenAPI)",
        description="Run the HTTP API on HOST:PORT with one worker process per core "
                    "(SO_REUSEPORT), on the embedded PostgreSQL unless ONECARD_DATABASE_URL "
                    "is set, with the key service of ONECARD_HSM_BACKEND (soft by default). "
                    "Migrations are applied at startup.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=port, default=8080, help="TCP port (0: any free port)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per core)")
    parser.add_argument("--no-batching", action="store_true",
                        help="one database transaction per tap (for comparison)")
    parser.add_argument("--clock-skew-ms", type=integer_in(0, 2**31), default=None,
                        help="how far ahead of the server clock a gate may date a tap before "
                             "it is declined tap_in_future (default: 300000, 5 minutes; "
                             "offline uploads may be any age)")
    parser.add_argument("--fare-config", type=Path, default=None,
                        help="fare engine TOML (default: the packaged Chengdu demo)")
    parser.add_argument("--shared-data", type=Path, default=None,
                        help="reference data folder (default: $ONECARD_REFERENCE_DATA, else "
                             "<repo>/../shared/data)")
    parser.add_argument("--alert-config", type=Path, default=None,
                        help="TOML file whose [alerts] table sets the abnormal-usage alert "
                             "thresholds; ONECARD_ALERT_<FIELD> variables override single ones")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from engine.alerts import AlertThresholds
    from engine.app import TapSettings
    from engine.server import WORKERS_MAX, ServeOptions, serve
    from engine.taps.service import CLOCK_SKEW_MS_MAX

    if not 1 <= args.workers <= WORKERS_MAX:
        raise UsageError(f"--workers: must be 1 to {WORKERS_MAX}")
    if args.clock_skew_ms is not None and not 0 <= args.clock_skew_ms <= CLOCK_SKEW_MS_MAX:
        raise UsageError(f"--clock-skew-ms: must be 0 to {CLOCK_SKEW_MS_MAX}")
    # Read before any worker starts, so a bad threshold stops the command with its name.
    thresholds = AlertThresholds.configured(args.alert_config)
    settings = TapSettings(fare_config=args.fare_config, shared_data=args.shared_data,
                           alert_thresholds=thresholds)
    if args.clock_skew_ms is not None:
        settings = dataclasses.replace(settings, clock_skew_ms_max=args.clock_skew_ms)
    if args.no_batching:
        settings = dataclasses.replace(settings, flush_size_max=1, flush_delay_ms=0)
    return serve(ServeOptions(args.host, args.port, args.workers, settings))
