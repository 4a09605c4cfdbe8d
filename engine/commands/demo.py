"""``onecard demo``: one realistic programme day on the embedded default (see
:mod:`engine.demo`); prints the summary and writes every artefact to ``--out``."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from engine.config import Config
from engine.demo import CARDHOLDERS_DEFAULT, OUT_DEFAULT, TAPS_DEFAULT
from engine.errors import UsageError
from engine.output import add_command, emit

COUNT_MAX = 10_000_000


def register(subparsers) -> None:
    parser = add_command(subparsers, "demo", "run a programme day end to end: banks, cardholders, keys, "
                                             "taps over HTTP, batches, settlement, reconciliation, audit")
    parser.add_argument("--cardholders", type=int, default=CARDHOLDERS_DEFAULT, metavar="N")
    parser.add_argument("--taps", type=int, default=TAPS_DEFAULT, metavar="N")
    parser.add_argument("--out", type=Path, default=OUT_DEFAULT, metavar="DIR", help="artefact folder")
    parser.add_argument("--seed", type=int, default=1, metavar="S")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from engine.demo.render import render
    from engine.demo.run import DemoOptions, run_demo

    if not 3 <= args.cardholders <= COUNT_MAX:
        raise UsageError(f"--cardholders: must be 3 to {COUNT_MAX}")
    if not 1 <= args.taps <= COUNT_MAX:
        raise UsageError(f"--taps: must be 1 to {COUNT_MAX}")
    _check_out(args.out)
    summary = asyncio.run(run_demo(DemoOptions(args.cardholders, args.taps, args.out, args.seed), Config.from_env()))
    emit(args, render(summary), summary)
    return 0 if summary["audit_ok"] and summary["positions_sum_minor"] == 0 else 1


def _check_out(out: Path) -> None:
    """Refuse an artefact folder that cannot be written before any work starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UsageError(f"--out {out}: cannot write there ({error.strerror})") from None
