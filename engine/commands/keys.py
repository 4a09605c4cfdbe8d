"""``onecard keys init|import|generate|list|rotate``: the key ceremony.

An issuer master key is never typed whole: officers enter at least two components,
each shown with its key check value (KCV) as they are entered; the key is their XOR and
is stored only when its KCV equals the one given with ``--kcv``. A component given as
``-`` is read from the terminal without echo (so it stays out of shell history and the
process list). Key values are never printed: only labels, types, algorithms, KCVs and
dates.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from engine.config import Config
from engine.errors import UsageError
from engine.output import add_command, emit
from hsm.ceremony import combine_components
from hsm.inputs import from_hex
from hsm.scheme import SCHEMES
from hsm.service import DATA_KEY_ALGS, IMK_ALGS, open_key_service
from hsm.soft import SoftKeyService


def register(subparsers) -> None:
    group = subparsers.add_parser("keys", help="key ceremony: init, import, generate, list, rotate")
    commands = group.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    add_command(
        commands, "init", "create the key store (soft backend) or check the token"
    ).set_defaults(handler=_init)

    imported = add_command(commands, "import", "import an issuer master key from components")
    imported.add_argument("--label", required=True)
    imported.add_argument("--type", dest="key_type", required=True, choices=["imk-ac"])
    imported.add_argument("--alg", required=True, choices=sorted(IMK_ALGS))
    imported.add_argument(
        "--scheme",
        required=True,
        help=f"one of {', '.join(sorted(SCHEMES))}, or ALG:A|B:SESSION_KEY_DERIVATION:AC_MAC",
    )
    imported.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="HEX",
        help="a key component (16 bytes of hex; '-' to type it unseen); at least two",
    )
    imported.add_argument(
        "--component-kcv",
        action="append",
        default=[],
        metavar="HEX",
        help="the expected KCV of each component, in order (optional)",
    )
    imported.add_argument("--kcv", required=True, metavar="HEX", help="the expected KCV of the key")
    imported.set_defaults(handler=_import)

    generated = add_command(commands, "generate", "create a random data key inside the key service")
    generated.add_argument("--label", required=True)
    generated.add_argument("--type", dest="key_type", required=True, choices=sorted(DATA_KEY_ALGS))
    generated.set_defaults(handler=_generate)

    add_command(commands, "list", "list keys: label, type, algorithm, KCV, created").set_defaults(
        handler=_list
    )

    rotated = add_command(
        commands, "rotate", "give a data key a new version (old data stays readable)"
    )
    rotated.add_argument("--label", required=True)
    rotated.set_defaults(handler=_rotate)


def _service():
    return open_key_service(Config.from_env())


def _run(coroutine_function):
    async def run():
        service = _service()
        try:
            return await coroutine_function(service)
        finally:
            await service.close()

    return asyncio.run(run())


def _init(args: argparse.Namespace) -> int:
    backend = os.environ.get("ONECARD_HSM_BACKEND", "").strip() or "soft"
    created = backend == "soft" and SoftKeyService.init(Config.from_env().home / "keys")
    # Opening the service proves the store (or token, which softhsm2-util or the HSM
    # vendor's tool initialises) is usable.
    keys = _run(lambda service: service.list_keys())
    verb = "created" if created else "opened"
    emit(
        args,
        f"{verb} {backend} key store ({len(keys)} keys)",
        {"backend": backend, "created": created, "keys": len(keys)},
    )
    return 0


def _read_component(index: int, text: str) -> bytes:
    if text == "-":
        text = getpass.getpass(f"component {index}: ")
    try:
        return from_hex(f"component {index}", text.strip(), 16)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _import(args: argparse.Namespace) -> int:
    alg = IMK_ALGS[args.alg]
    components = [_read_component(n, text) for n, text in enumerate(args.component, start=1)]
    try:
        component_kcvs = [
            from_hex(f"--component-kcv {n}", text)
            for n, text in enumerate(args.component_kcv, start=1)
        ]
        kcv = from_hex("--kcv", args.kcv)
    except ValueError as error:
        raise UsageError(str(error)) from None
    key, lines = combine_components(alg, components, component_kcvs, kcv)
    # The officers see the check values before the store or token accepts the key.
    for line in lines:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
    info = _run(
        lambda service: service.import_key(args.label, args.key_type, args.alg, key, args.scheme)
    )
    emit(args, info.label, info)
    return 0


def _generate(args: argparse.Namespace) -> int:
    info = _run(lambda service: service.generate_key(args.label, args.key_type))
    emit(args, info.label, info)
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = _run(lambda service: service.list_keys())
    rows = [f"{'LABEL':<24} {'TYPE':<10} {'ALG':<12} {'KCV':<7} {'VER':>3}  CREATED (UTC)  SCHEME"]
    rows += [
        f"{k.label:<24} {k.key_type:<10} {k.alg:<12} {k.kcv:<7} {k.version:>3}  "
        f"{k.created_utc}  {k.scheme or ''}"
        for k in keys
    ]
    emit(args, "\n".join(rows), keys)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    info = _run(lambda service: service.rotate_key(args.label))
    emit(args, f"{info.label} version {info.version} (KCV {info.kcv})", info)
    return 0
