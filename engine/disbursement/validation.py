"""Validating disbursement batch lines: pure, given lookups into the registry and history.

:class:`BatchValidator` takes the lines of one batch in file order, one at a time, and
returns a :class:`LineOutcome` for each (none dropped); :meth:`BatchValidator.finish`
then checks the totals the file declared and returns a :class:`BatchSummary`. It keeps
only counters, a running SHA-256 and one integer per accepted person, so a batch of
millions of lines streams in constant memory apart from that set (~70 bytes a line).

Checks, in the priority order of :class:`~engine.disbursement.results.LineResult`:

1-3. identity number (:func:`~engine.disbursement.resident_id.check_id`; a numeric XLSX
     cell is ``id_in_scientific_notation`` whatever it shows);
4-7. registry: the cardholder exists (``cardholder_not_found``), the name matches
     (:func:`~engine.disbursement.text.canonical_name`), the card is active, and the
     line's card number has the registered card's token (a numeric XLSX card cell is an
     ``account_mismatch``: its last digits are lost);
8-11. amount: a number, > 0, whole fen, at most the programme's per-person maximum;
12. ``duplicate_in_batch``: the person already has an accepted line in this batch (the
    first good line is paid, later ones are flagged);
13. ``already_paid_in_period``: the history lookup says this person was paid in the period.

The lookups are called once per line that reaches them. A store reading from PostgreSQL
prefetches instead: it takes the lines in chunks, fetches the chunk's cardholders and
payment history (one query) into dicts, and passes ``dict.get``-based callables that
read whichever chunk is current. What needs only the line itself (normalising, the
identity number's check, the amount) is :func:`prepare_line`, and its part of the content
hash :func:`content_piece`; the store computes both ahead a chunk at a time
(:func:`prepare_chunk`), in another process for a large file
(:meth:`BatchValidator.check_prepared`, :meth:`BatchValidator.add_content`).

The content hash covers every line's normalised fields (identity number, name, card
number, amount in fen or as written if unreadable, item), so the same batch in UTF-8, GBK or XLSX has
the same hash; approval binds to it.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from adapters.batch_file import BatchLine, BatchSource
from adapters.columns import DeclaredTotals
from engine.disbursement.amount import FRACTION_DIGITS_MAX, format_minor, parse_amount, parse_amount_minor
from engine.disbursement.bank_card import compact_pan
from engine.disbursement.errors import AmountError, AmountFormatError, AmountPrecisionError, TotalsMismatchError
from engine.disbursement.registry import CardholderRecord, CardStatus
from engine.disbursement.resident_id import IdCheck, check_id, id_key, normalise_id
from engine.disbursement.results import LineResult
from engine.disbursement.text import canonical_name, normalise_cell

# The ledger's amount column is a signed 64-bit integer of fen.
BATCH_SUM_MINOR_MAX = 2**63 - 1
FIELD_SEPARATOR = "\x1f"
LINE_SEPARATOR = "\x1e"

ID_CHECK_RESULTS = {
    IdCheck.invalid_format: LineResult.invalid_id_format,
    IdCheck.invalid_checksum: LineResult.invalid_id_checksum,
    IdCheck.scientific_notation: LineResult.id_in_scientific_notation,
}

# By number: calling an IntEnum class runs Python code, indexing a tuple does not.
_LINE_RESULTS = tuple(LineResult)
assert all(result.value == number for number, result in enumerate(_LINE_RESULTS))


@dataclass(frozen=True)
class ValidationContext:
    """What validation needs from outside, as plain callables (no database here).

    Attributes
    ----------
    lookup_cardholder : Callable[[str], CardholderRecord | None]
        Normalised identity number to the registered cardholder, or ``None``.
    already_paid : Callable[[str], bool]
        Whether this identity number was already paid by the programme in the period.
    pan_token : Callable[[str], str]
        The key service's token of a compact PAN (``hsm.service.KeyService.tokenize_pan``,
        32 hex digits), compared with ``CardholderRecord.pan_token``. The key service is
        async, so the store tokenises a chunk's card numbers first and passes a dict lookup.
    per_person_max_minor : int
        The programme's per-person maximum per period, in fen (> 0).
    today : datetime.date
        Birth dates after this day are refused.
    """

    lookup_cardholder: Callable[[str], CardholderRecord | None]
    already_paid: Callable[[str], bool]
    pan_token: Callable[[str], str]
    per_person_max_minor: int
    today: datetime.date

    def __post_init__(self) -> None:
        assert self.per_person_max_minor > 0, "per-person maximum must be positive"


class LineOutcome(msgspec.Struct, frozen=True, gc=False):
    """The result for one line.

    Attributes
    ----------
    line : BatchLine
        The line as read (its own fields go to the result file).
    result : LineResult
        ``ok`` or the highest-priority problem.
    detail : str
        A sentence about the problem (``""`` when ok); never contains the identity number.
    id_number : str
        The normalised identity number (as far as it could be normalised).
    amount_minor : int | None
        The amount in fen, ``None`` when it is not a whole number of fen.
    cardholder : CardholderRecord | None
        The registry record when one was found (gives the issuing bank for execution).
    """

    line: BatchLine
    result: LineResult
    detail: str
    id_number: str
    amount_minor: int | None
    cardholder: CardholderRecord | None = None


@dataclass(frozen=True)
class BatchSummary:
    """Totals of one validated batch.

    ``lines_count`` counts every data line; ``accepted_minor`` is the sum in fen of the
    accepted lines; ``results`` counts lines per :class:`LineResult` name (only non-zero
    counts); ``content_sha256`` is the hex SHA-256 of the normalised lines.
    """

    lines_count: int
    accepted_count: int
    accepted_minor: int
    results: dict[str, int]
    content_sha256: str


class PreparedLine(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What validation takes from one line alone (no registry, no other line), so it can
    be computed ahead of the registry lookups, or in another process
    (:func:`prepare_line`; the numbers are enum values, which msgpack carries as such).

    Attributes
    ----------
    id_number, pan, name_key : str
        :func:`normalise_id`, :func:`compact_pan` and :func:`canonical_name` of the cells.
    id_check : int
        :class:`IdCheck` of ``id_number`` (``id_detail`` says why when not valid).
    amount_minor : int | None
        The amount in fen, ``None`` when it is not a whole number of fen.
    amount_result : int
        :class:`LineResult` ``ok``, ``amount_not_positive``, ``amount_precision`` or
        ``invalid_amount_format`` (``amount_detail`` says why when not ok).
    sub_fen_yuan : str
        The exact amount in yuan of an ``amount_precision`` line (for the control sum), else ``""``.
    person_key : int
        :func:`~engine.disbursement.resident_id.id_key` of a valid ``id_number``, else 0.
    """

    id_number: str
    pan: str
    name_key: str
    id_check: int
    id_detail: str
    amount_minor: int | None
    amount_result: int
    amount_detail: str
    sub_fen_yuan: str
    person_key: int


def prepare_line(line: BatchLine, today: datetime.date) -> PreparedLine:
    """The :class:`PreparedLine` of ``line``; birth dates after ``today`` are refused.

    >>> prepared = prepare_line(BatchLine(1, "51012119580314215x", "张 三", "6222 0264", "1.005"),
    ...                         datetime.date(2026, 1, 1))
    >>> prepared.id_number, prepared.name_key, prepared.pan, IdCheck(prepared.id_check).name
    ('51012119580314215X', '张三', '62220264', 'invalid_checksum')
    >>> LineResult(prepared.amount_result).name, prepared.sub_fen_yuan
    ('amount_precision', '1.005')
    """
    id_number = normalise_id(line.id_number)
    name_key = canonical_name(line.name)
    pan = compact_pan(line.card_number)
    id_check, id_detail = check_id(id_number, today)
    sub_fen_yuan = ""
    try:
        amount_minor: int | None = parse_amount_minor(line.amount)
    except AmountPrecisionError as error:
        amount_minor, amount_result, amount_detail = None, LineResult.amount_precision, str(error)
        sub_fen_yuan = str(error.exact)
    except AmountFormatError as error:
        amount_minor, amount_result, amount_detail = None, LineResult.invalid_amount_format, str(error)
    else:
        assert amount_minor is not None
        amount_result, amount_detail = ((LineResult.ok, "") if amount_minor > 0
                                        else (LineResult.amount_not_positive, "amount must be more than 0"))
    person_key = id_key(id_number) if id_check is IdCheck.valid else 0
    return PreparedLine(id_number, pan, name_key, id_check, id_detail, amount_minor, amount_result, amount_detail,
                        sub_fen_yuan, person_key)


def content_piece(line: BatchLine, prepared: PreparedLine) -> bytes:
    """The line's part of the batch's content hash: UTF-8 of its normalised identity
    number, name, card number, amount (fen, or the cell if unreadable) and item, each
    followed by ``\\x1f``, then ``\\x1e``.

    >>> line = BatchLine(1, "51012119580314215x", "张 三", "6222 0264", "1.00", item=" 高龄 ")
    >>> content_piece(line, prepare_line(line, datetime.date(2026, 1, 1))).decode()
    '51012119580314215X\\x1f张三\\x1f62220264\\x1f100\\x1f高龄\\x1f\\x1e'
    """
    amount_text = str(prepared.amount_minor) if prepared.amount_minor is not None else normalise_cell(line.amount)
    return FIELD_SEPARATOR.join((
        prepared.id_number, prepared.name_key, prepared.pan, amount_text, normalise_cell(line.item), LINE_SEPARATOR,
    )).encode()


def prepare_chunk(lines: Sequence[BatchLine], today: datetime.date) -> tuple[list[PreparedLine], bytes]:
    """:func:`prepare_line` of each line, and their :func:`content_piece` joined in order
    (what :meth:`BatchValidator.add_content` takes: one hash update a chunk, not one a line)."""
    prepared = [prepare_line(line, today) for line in lines]
    return prepared, b"".join(map(content_piece, lines, prepared))


@dataclass
class BatchValidator:
    """Validates the lines of one batch in order (see the module docstring).

    >>> record = CardholderRecord("510121195803142150", "张三", CardStatus.active,
    ...                           "tok:6222026465816998396", "8396", "ICBC")
    >>> validator = BatchValidator(ValidationContext(
    ...     lookup_cardholder={record.id_number: record}.get, already_paid=lambda _: False,
    ...     pan_token=lambda pan: "tok:" + pan, per_person_max_minor=100_000,
    ...     today=datetime.date(2026, 1, 1)))
    >>> line = BatchLine(1, "510121195803142150", "张三", "6222026465816998396", "300.00")
    >>> again = BatchLine(2, "510121195803142150", "张 三", "6222 0264 6581 6998 396", "¥300元")
    >>> validator.check(line).result, validator.check(again).result
    (<LineResult.ok: 0>, <LineResult.duplicate_in_batch: 12>)
    >>> validator.finish([]).accepted_minor
    30000
    """

    context: ValidationContext
    lines_count: int = 0
    accepted_count: int = 0
    accepted_minor: int = 0
    _all_minor: int = 0
    _sub_fen_yuan: Decimal = field(default_factory=Decimal)
    _unreadable_amounts: int = 0
    # Counts indexed by result number: a list, since hashing an IntEnum member runs Python code.
    _results: list[int] = field(default_factory=lambda: [0] * len(LineResult))
    _persons: set[int] = field(default_factory=set)
    _last_person: int = 0
    _hash: "hashlib._Hash" = field(default_factory=hashlib.sha256)

    def check(self, line: BatchLine) -> LineOutcome:
        """The outcome of the next line (lines must come in file order, each once)."""
        prepared = prepare_line(line, self.context.today)
        self.add_content(content_piece(line, prepared))
        return self.check_prepared(line, prepared)

    def add_content(self, pieces: bytes) -> None:
        """Add lines' :func:`content_piece` (joined, in file order) to the content hash:
        every line checked with :meth:`check_prepared` must be added once, in order."""
        self._hash.update(pieces)

    def check_prepared(self, line: BatchLine, prepared: PreparedLine) -> LineOutcome:
        """:meth:`check` given ``prepare_line(line, context.today)``, computed ahead (as a
        store does, to prefetch the registry, or in another process), without its content
        (:meth:`add_content`)."""
        assert line.line == self.lines_count + 1, "lines must be checked once, in order"
        self.lines_count += 1
        amount_minor = prepared.amount_minor
        amount_result = _LINE_RESULTS[prepared.amount_result]
        if amount_result is LineResult.amount_precision:
            self._sub_fen_yuan += Decimal(prepared.sub_fen_yuan)
        elif amount_result is LineResult.invalid_amount_format:
            self._unreadable_amounts += 1
        else:
            assert amount_minor is not None
            self._all_minor += amount_minor
        result, detail, cardholder = self._decide(line, prepared, amount_result)
        self._results[result] += 1
        if result is LineResult.ok:
            assert amount_minor is not None
            self.accepted_count += 1
            self.accepted_minor += amount_minor
            self._persons.add(self._last_person)
        return LineOutcome(line, result, detail, prepared.id_number, amount_minor, cardholder)

    def _decide(self, line: BatchLine, prepared: PreparedLine,
                amount_result: LineResult) -> tuple[LineResult, str, CardholderRecord | None]:
        """(result, detail, registry record) of one line, checks in priority order."""
        if "id_number" in line.numeric_fields:
            return (LineResult.id_in_scientific_notation,
                    "identity number is a numeric cell: Excel keeps 15 digits (format the column as text)", None)
        if prepared.id_check != IdCheck.valid:
            return ID_CHECK_RESULTS[prepared.id_check], prepared.id_detail, None
        id_number = prepared.id_number
        cardholder = self.context.lookup_cardholder(id_number)
        if cardholder is None:
            return LineResult.cardholder_not_found, "no registered cardholder has this identity number", None
        name_key = prepared.name_key
        if name_key != cardholder.name and name_key != canonical_name(cardholder.name):
            return LineResult.name_mismatch, "name differs from the registered name", cardholder
        if cardholder.status is not CardStatus.active:
            return LineResult.card_not_active, f"card is {cardholder.status.value}", cardholder
        if "card_number" in line.numeric_fields:
            return (LineResult.account_mismatch,
                    "card number is a numeric cell: Excel keeps 15 digits (format the column as text)", cardholder)
        if self.context.pan_token(prepared.pan) != cardholder.pan_token:
            return (LineResult.account_mismatch,
                    f"card number is not the registered card (ending {cardholder.pan_last4})", cardholder)
        if amount_result is not LineResult.ok:
            return amount_result, prepared.amount_detail, cardholder
        amount_minor = prepared.amount_minor
        assert amount_minor is not None and amount_minor > 0
        if amount_minor > self.context.per_person_max_minor:
            return (LineResult.amount_over_limit,
                    f"more than the per-person maximum {format_minor(self.context.per_person_max_minor)}", cardholder)
        self._last_person = prepared.person_key
        if self._last_person in self._persons:
            return LineResult.duplicate_in_batch, "this person has an earlier accepted line", cardholder
        if self.context.already_paid(id_number):
            return LineResult.already_paid_in_period, "already paid by this programme in the period", cardholder
        return LineResult.ok, "", cardholder

    def finish(self, declared: list[DeclaredTotals]) -> BatchSummary:
        """Check the declared totals against all lines (accepted or not) and summarise.

        Raises
        ------
        TotalsMismatchError
            A declared count differs from the number of lines, a declared amount from the
            exact sum of all line amounts, a declared amount is unreadable, or the
            accepted sum exceeds ``BATCH_SUM_MINOR_MAX``. The whole file is refused.
        """
        lines_yuan = Decimal(self._all_minor).scaleb(-FRACTION_DIGITS_MAX) + self._sub_fen_yuan
        for totals in declared:
            if totals.count is not None and totals.count != self.lines_count:
                raise TotalsMismatchError(
                    f"{totals.source} declares {totals.count} lines, the file has {self.lines_count}"
                )
            if totals.amount_text is None:
                continue
            try:
                declared_yuan = parse_amount(totals.amount_text)
            except AmountError:
                raise TotalsMismatchError(
                    f"{totals.source} amount {totals.amount_text!r} is not a number"
                ) from None
            if declared_yuan != lines_yuan:
                unreadable = (f" ({self._unreadable_amounts} line(s) with an unreadable amount)"
                              if self._unreadable_amounts else "")
                raise TotalsMismatchError(
                    f"{totals.source} declares {declared_yuan} yuan, the lines sum to {lines_yuan}{unreadable}"
                )
        if self.accepted_minor > BATCH_SUM_MINOR_MAX:
            raise TotalsMismatchError(f"accepted lines sum to more than {format_minor(BATCH_SUM_MINOR_MAX)} yuan")
        return BatchSummary(
            lines_count=self.lines_count,
            accepted_count=self.accepted_count,
            accepted_minor=self.accepted_minor,
            results={LineResult(r).name: n for r, n in enumerate(self._results) if n},
            content_sha256=self._hash.hexdigest(),
        )


def validate_source(source: BatchSource, validator: BatchValidator) -> Iterator[LineOutcome]:
    """Every line of ``source`` checked by ``validator``, in order; call
    ``validator.finish(source.declared_totals())`` once this is exhausted."""
    for line in source.lines():
        yield validator.check(line)
