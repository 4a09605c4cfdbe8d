"""The ``onecard`` command line.

Each module in :mod:`engine.commands` defines ``register(subparsers)`` and adds its own
command group (``onecard db ...``, ``onecard keys ...``); this module finds them, parses
the arguments and runs the chosen handler.

Conventions every command keeps:

- a command that creates something prints its id; ``--json`` prints one JSON document
  (see :func:`engine.output.emit`);
- errors go to stderr as ``onecard: <message>`` with a non-zero exit code and no
  traceback (exit 1 for a refused request, 2 for bad usage, 70 for an internal error;
  ``ONECARD_DEBUG=1`` shows the traceback of an internal error).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

import engine.commands
from engine.errors import UsageError, user_errors

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group of :mod:`engine.commands`."""
    parser = argparse.ArgumentParser(
        prog="onecard", description="onecard payment clearing and disbursement engine"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(engine.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"engine.commands.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (also the process exit code of ``onecard``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except UsageError as error:
        print(f"onecard: {error}", file=sys.stderr)
        return EXIT_USAGE
    except user_errors() as error:
        print(f"onecard: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as error:
        # A file the user named is missing, a folder, or unreadable: say which and why.
        target = f"{error.filename}: " if error.filename else ""
        print(f"onecard: {target}{error.strerror or error}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("onecard: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - last line of defence: no traceback to users
        if os.environ.get("ONECARD_DEBUG") == "1":
            traceback.print_exc()
        # The message of an unexpected error may carry data we must not print (keys,
        # personal data), so only its class is shown.
        print(
            f"onecard: internal error ({error.__class__.__name__}); "
            "set ONECARD_DEBUG=1 to see the traceback",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
