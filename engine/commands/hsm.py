"""``onecard hsm check-vectors FILE``: run a cryptogram vector file through the key service."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from engine.output import add_command, emit
from hsm.soft import SoftKeyService
from hsm.vectors import ServiceVerifier, check_case, load_cases


def register(subparsers) -> None:
    group = subparsers.add_parser("hsm", help="key service checks")
    commands = group.add_subparsers(dest="hsm_command", metavar="ACTION", required=True)
    check = add_command(
        commands,
        "check-vectors",
        "verify every ARQC and ARPC of a vector file (format of shared/data/emv/README.md)",
    )
    check.add_argument("file", type=Path, help="JSON vector file")
    check.set_defaults(handler=_check_vectors)


def _check_vectors(args: argparse.Namespace) -> int:
    cases = load_cases(args.file)

    async def run() -> list[list[str]]:
        # The vector keys are test keys: they go into a throwaway soft store, never into
        # the programme's key store.
        with tempfile.TemporaryDirectory(prefix="onecard-vectors-") as folder:
            SoftKeyService.init(Path(folder))
            service = SoftKeyService.open(Path(folder))
            try:
                verifier = await ServiceVerifier.prepare(service, cases)
                return [check_case(case, verifier) for case in cases]
            finally:
                await service.close()

    outcomes = asyncio.run(run())
    failed = [(case.id, failures) for case, failures in zip(cases, outcomes) if failures]
    lines = [f"FAIL {case_id}: {'; '.join(failures)}" for case_id, failures in failed]
    lines.append(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
    emit(
        args,
        "\n".join(lines),
        {
            "passed": len(cases) - len(failed),
            "failed": [{"id": case_id, "failures": failures} for case_id, failures in failed],
        },
    )
    return 1 if failed else 0
