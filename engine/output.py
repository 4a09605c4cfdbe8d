"""Printing command results: one human line or table, or one JSON document with ``--json``."""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

_json_encoder = msgspec.json.Encoder()


def add_command(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """Add a leaf command ``name`` with the common ``--json`` flag; return its parser."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print ``data`` as JSON when ``args.json`` is set, else ``text`` (if not empty).

    ``data`` is anything msgspec encodes (dicts, lists, Structs, ints; never floats for money).
    """
    if getattr(args, "json", False):
        sys.stdout.write(_json_encoder.encode(data).decode() + "\n")
    elif text:
        sys.stdout.write(text.rstrip("\n") + "\n")


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns (a CJK character takes two).

    >>> pad("工商银行", 10) + "|", pad("ICBC", 10) + "|"
    ('工商银行  |', 'ICBC      |')
    """
    from rich.cells import cell_len

    return text + " " * max(0, width - cell_len(text))


def table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first is the header) as text columns two spaces apart, each as wide
    as its widest cell in terminal columns (see :func:`pad`); no trailing spaces.

    >>> print(table([("id", "name"), ("7", "高龄津贴"), ("12", "x")]))
    id  name
    7   高龄津贴
    12  x
    """
    from rich.cells import cell_len

    assert rows and len({len(row) for row in rows}) == 1, "every row has the header's columns"
    widths = [max(cell_len(cell) for cell in column) for column in zip(*rows)]
    return "\n".join("  ".join(pad(cell, width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def utc_text(at_ms: int) -> str:
    """Unix time in milliseconds as ISO 8601 UTC with milliseconds, for people to read
    (``--json`` keeps the number).

    >>> utc_text(1796075405225)
    '2026-11-30T21:50:05.225Z'
    >>> utc_text(0)
    '1970-01-01T00:00:00.000Z'
    """
    at = _EPOCH + datetime.timedelta(milliseconds=at_ms)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

PROGRESS_LINES_MIN = 10_000


class Progress:
    """A progress bar on stderr (rich) for work of ``total`` lines (``None``: unknown).

    By default it shows only when stderr is a terminal and ``total`` is at least
    :data:`PROGRESS_LINES_MIN`, so it never mixes with ``--json`` output (stdout) or with
    captured logs; ``enabled`` overrides that. Use as a context manager; :meth:`advance`
    adds done lines.
    """

    def __init__(self, description: str, total: int | None, *, enabled: bool | None = None) -> None:
        self._description = description
        self._total = total
        if enabled is None:
            enabled = sys.stderr.isatty() and total is not None and total >= PROGRESS_LINES_MIN
        self._enabled = enabled
        self._bar = None
        self._task = None

    def __enter__(self) -> "Progress":
        if self._enabled:
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self._description, total=self._total)
        return self

    def advance(self, lines: int) -> None:
        """Count ``lines`` more lines as done."""
        if self._bar is not None:
            self._bar.advance(self._task, lines)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
