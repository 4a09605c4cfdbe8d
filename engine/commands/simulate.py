"""``onecard simulate gates``: emulated cards tapping through gates, printed or sent."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from engine.config import Config
from engine.errors import UsageError
from engine.output import add_command, emit
from hsm.scheme import SCHEMES
from terminal.simulator import CONCURRENCY_DEFAULT, Fault, Simulation, send_taps


def register(subparsers) -> None:
    group = subparsers.add_parser("simulate", help="simulators for tests, demos and benchmarks")
    commands = group.add_subparsers(dest="simulate_command", metavar="ACTION", required=True)
    gates = add_command(commands, "gates", "N emulated cards tapping through M gates")
    gates.add_argument("--cards", type=int, default=100)
    gates.add_argument("--gates", type=int, default=10)
    gates.add_argument("--taps", type=int, default=100)
    gates.add_argument("--bad-share", type=float, default=0.0,
                       help="share of taps with a fault (wrong ARQC, replayed ATC, deny-listed card)")
    gates.add_argument("--seed", type=int, default=0, help="seeds the run, the PANs and the simulation keys")
    gates.add_argument("--scheme", action="append", choices=sorted(SCHEMES),
                       help="card scheme (repeat for a mix; default pboc-3des)")
    gates.add_argument("--amount", type=int, default=0, help="amount each gate authorises, minor units")
    gates.add_argument("--engine", metavar="URL", help="send the taps to this engine (else print them)")
    gates.add_argument("--concurrency", type=int, default=CONCURRENCY_DEFAULT)
    gates.set_defaults(handler=_gates)


def _gates(args: argparse.Namespace) -> int:
    if args.taps < 0 or args.concurrency < 1:
        raise UsageError("--taps must be >= 0 and --concurrency >= 1")
    try:
        simulation = Simulation(cards=args.cards, gates=args.gates, bad_share=args.bad_share,
                                seed=args.seed, schemes=args.scheme or ["pboc-3des"], amount=args.amount)
    except ValueError as error:
        raise UsageError(str(error)) from None
    items = list(simulation.taps(args.taps))
    faults = Counter(item.fault.name for item in items)
    if not args.engine:
        lines = [f"{item.tap.tap_id} {item.tap.direction} {item.tap.station} atc={item.tap.atc} "
                 f"{item.fault.name}" for item in items]
        emit(args, "\n".join(lines), [{"fault": item.fault.name, "tap": item.tap} for item in items])
        return 0
    queue_dir = Config.from_env().home / "gates" / f"simulation-{args.seed}"
    outcomes = asyncio.run(send_taps((item.tap for item in items), args.engine, simulation.gate_keys,
                                     queue_dir, concurrency=args.concurrency))
    text = "\n".join([f"sent {len(items)} taps",
                      "faults: " + ", ".join(f"{name} {faults[name]}" for name in Fault.__members__),
                      "outcomes: " + ", ".join(f"{key} {count}" for key, count in sorted(outcomes.items()))])
    emit(args, text, {"taps": len(items), "faults": dict(faults), "outcomes": dict(outcomes)})
    return 0
