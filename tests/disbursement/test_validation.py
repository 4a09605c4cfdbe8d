import datetime
import hashlib

import pytest

from adapters.batch_file import BatchLine, TabularBatchFile
from adapters.columns import DeclaredTotals
from engine.disbursement.errors import TotalsMismatchError
from engine.disbursement.registry import CardholderRecord, CardStatus
from engine.disbursement.results import LineResult
from engine.disbursement.validation import BatchValidator, ValidationContext, prepare_chunk, validate_source
from engine.synthetic import Population, batch_lines, write_batch_csv

TODAY = datetime.date(2026, 1, 1)
MAX_MINOR = 50_000
PAID_BEFORE = "510112198711023688"

# Registry for the hand-written table: synthetic numbers from identity/cn_identity_numbers.md.
REGISTRY = {
    "510121195803142150": CardholderRecord("510121195803142150", "张三", CardStatus.active,
                                           "T6222026465816998396", "8396", "ICBC"),
    "51340119720505003X": CardholderRecord("51340119720505003X", "阿依古丽·买买提", CardStatus.active,
                                           "T6214825837354017807", "7807", "CDCB"),
    "510681200809011220": CardholderRecord("510681200809011220", "李四", CardStatus.lost,
                                           "T6222026465816998396", "8396", "ICBC"),
    PAID_BEFORE: CardholderRecord(PAID_BEFORE, "王五", CardStatus.active, "T6259083065450331", "0331", "BOC"),
}
ICBC_CARD = "6222026465816998396"


def context(lookup=REGISTRY.get):
    return ValidationContext(lookup_cardholder=lookup, already_paid=lambda number: number == PAID_BEFORE,
                             pan_token=lambda pan: "T" + pan, per_person_max_minor=MAX_MINOR, today=TODAY)


def run(rows, numeric=None):
    validator = BatchValidator(context())
    outcomes = [validator.check(BatchLine(i, *row, numeric_fields=(numeric or {}).get(i, frozenset())))
                for i, row in enumerate(rows, start=1)]
    return outcomes, validator


# One row per reason code (and a few variants): (id, name, card, amount) -> expected result.
TABLE = [
    (("510121195803142150", "张三", ICBC_CARD, "300.00"), LineResult.ok),
    (("51012119580314215", "张三", ICBC_CARD, "300.00"), LineResult.invalid_id_format),
    (("510121195803142151", "张三", ICBC_CARD, "300.00"), LineResult.invalid_id_checksum),
    (("110105199001011000", "张三", ICBC_CARD, "300.00"), LineResult.invalid_id_checksum),
    (("5.10121E+17", "张三", ICBC_CARD, "300.00"), LineResult.id_in_scientific_notation),
    (("510121195803142150", "张山", ICBC_CARD, "300.00"), LineResult.name_mismatch),
    (("510112198702292157", "张三", ICBC_CARD, "300.00"), LineResult.invalid_id_format),
    (("511002199507300438", "赵六", ICBC_CARD, "300.00"), LineResult.cardholder_not_found),
    (("510681200809011220", "李四", ICBC_CARD, "300.00"), LineResult.card_not_active),
    (("510121195803142150", "张三", "6214825837354017807", "300.00"), LineResult.account_mismatch),
    (("510121195803142150", "张三", ICBC_CARD, "三百元"), LineResult.invalid_amount_format),
    (("510121195803142150", "张三", ICBC_CARD, "0"), LineResult.amount_not_positive),
    (("510121195803142150", "张三", ICBC_CARD, "-1.00"), LineResult.amount_not_positive),
    (("510121195803142150", "张三", ICBC_CARD, "12.345"), LineResult.amount_precision),
    (("510121195803142150", "张三", ICBC_CARD, "500.01"), LineResult.amount_over_limit),
    ((PAID_BEFORE, "王五", "6259083065450331", "100"), LineResult.already_paid_in_period),
]


@pytest.mark.parametrize(("row", "expected"), TABLE, ids=[f"{e.name}-{i}" for i, (_, e) in enumerate(TABLE)])
def test_reason_code_table(row, expected):
    [outcome], _ = run([row])
    assert outcome.result is expected
    assert outcome.line.line == 1
    assert (outcome.detail == "") is (expected is LineResult.ok)


def test_every_reason_code_is_covered():
    covered = {expected for _, expected in TABLE} | {LineResult.duplicate_in_batch}
    assert covered == set(LineResult)


def test_priority_lowest_number_wins():
    # Bad checksum, wrong name, bad amount: the identity number is reported.
    [outcome], _ = run([("510121195803142151", "nobody", "1", "12.345")])
    assert outcome.result is LineResult.invalid_id_checksum
    # Lost card and amount over the limit: the card is reported.
    [outcome], _ = run([("510681200809011220", "李四", ICBC_CARD, "9999")])
    assert outcome.result is LineResult.card_not_active


def test_normalised_fields_match_the_registry():
    row = ("５１３４０１１９７２０５０５００３ｘ", " 阿依古丽•买买提 ", "6214 8258 3735 4017 807", "￥４００．００元")
    [outcome], _ = run([row])
    assert (outcome.result, outcome.id_number, outcome.amount_minor) == (LineResult.ok, "51340119720505003X", 40_000)


def test_duplicate_person_is_paid_once_and_flagged():
    good = ("510121195803142150", "张三", ICBC_CARD, "300.00")
    outcomes, validator = run([good, good, ("510121195803142150", "张三", ICBC_CARD, "100.00")])
    assert [o.result for o in outcomes] == [LineResult.ok, LineResult.duplicate_in_batch, LineResult.duplicate_in_batch]
    summary = validator.finish([])
    assert (summary.accepted_count, summary.accepted_minor) == (1, 30_000)


def test_a_rejected_first_occurrence_does_not_block_a_good_one():
    outcomes, _ = run([("510121195803142150", "张山", ICBC_CARD, "300.00"),
                       ("510121195803142150", "张三", ICBC_CARD, "300.00")])
    assert [o.result for o in outcomes] == [LineResult.name_mismatch, LineResult.ok]


def test_numeric_spreadsheet_cells_are_flagged_not_repaired():
    row = ("510121195803142000", "张三", ICBC_CARD, "300")
    outcomes, _ = run([row, ("510121195803142150", "张三", "6222026465816998000", "300")],
                      numeric={1: frozenset({"id_number"}), 2: frozenset({"card_number"})})
    assert [o.result for o in outcomes] == [LineResult.id_in_scientific_notation, LineResult.account_mismatch]


def test_summary_counts_and_totals():
    rows = [row for row, _ in TABLE]
    outcomes, validator = run(rows)
    lines_yuan = "3611.355"  # 10 x 300 + 0 - 1 + 12.345 + 500.01 + 100: every readable amount
    summary = validator.finish([DeclaredTotals("header", len(rows), lines_yuan)])
    assert summary.lines_count == len(rows) == len(outcomes)
    assert summary.accepted_count == 1 and summary.accepted_minor == 30_000
    assert summary.results["amount_not_positive"] == 2 and "ok" in summary.results


@pytest.mark.parametrize(("declared", "message"), [
    (DeclaredTotals("header", 3, None), "declares 3 lines, the file has 2"),
    (DeclaredTotals("totals row", None, "600.01"), "declares 600.01 yuan, the lines sum to 600.00"),
    (DeclaredTotals("header", 2, "six hundred"), "is not a number"),
])
def test_totals_mismatch_refuses_the_file(declared, message):
    good = ("510121195803142150", "张三", ICBC_CARD, "300.00")
    _, validator = run([good, good])
    with pytest.raises(TotalsMismatchError, match=message):
        validator.finish([declared])


def test_control_sum_is_exact_for_decimal_fractions():
    rows = [("510121195803142150", "张三", ICBC_CARD, a) for a in ("0.10", "0.20", "0.30")]
    _, validator = run(rows)
    assert validator.finish([DeclaredTotals("header", 3, "0.60")]).lines_count == 3


def test_content_hash_ignores_presentation_but_not_content():
    plain = ("510121195803142150", "张三", ICBC_CARD, "300.00")
    decorated = ("５１０１２１１９５８０３１４２１５０", " 张 三", "6222 0264 6581 6998 396", "¥300元")
    changed = ("510121195803142150", "张三", ICBC_CARD, "300.01")
    hashes = []
    for row in (plain, decorated, changed):
        _, validator = run([row])
        hashes.append(validator.finish([]).content_sha256)
    assert hashes[0] == hashes[1] != hashes[2]


@pytest.fixture(scope="module")
def population(shared_data):
    return Population(seed=11, environ={"ONECARD_REFERENCE_DATA": str(shared_data)})


def test_synthetic_batch_gives_exactly_the_planned_results(population, tmp_path):
    bad = {kind: 2 for kind in LineResult if kind not in (LineResult.ok, LineResult.already_paid_in_period)}
    planned = list(batch_lines(population, 300, per_person_max_minor=MAX_MINOR, bad=bad))
    path = tmp_path / "batch.csv"
    write_batch_csv(path, planned, encoding="gbk", totals="row")
    source = TabularBatchFile(path)

    def lookup(number):
        person = population.lookup(number)
        return person.record("T" + person.card_number) if person else None

    validator = BatchValidator(ValidationContext(lookup, lambda _: False, lambda pan: "T" + pan, MAX_MINOR, TODAY))
    outcomes = list(validate_source(source, validator))
    summary = validator.finish(source.declared_totals())
    assert [o.result for o in outcomes] == [p.expected for p in planned]
    assert [o.line.line for o in outcomes] == list(range(1, 301))
    assert summary.lines_count == 300 and summary.accepted_count == 300 - 2 * len(bad)


def test_a_chunk_content_added_at_once_is_the_hash_of_its_lines_one_by_one():
    lines = [BatchLine(1, "510121195803142150", "张 三", ICBC_CARD, "300.00", item="高龄"),
             BatchLine(2, "51340119720505003x", "阿依古丽·买买提", "6214825837354017807", "1.005")]
    one_by_one = BatchValidator(context())
    expected = [one_by_one.check(line) for line in lines]
    prepared, content = prepare_chunk(lines, TODAY)
    assert content == ("510121195803142150\x1f张三\x1f6222026465816998396\x1f30000\x1f高龄\x1f\x1e"
                       "51340119720505003X\x1f阿依古丽·买买提\x1f6214825837354017807\x1f1.005\x1f"
                       "\x1f\x1e").encode()
    chunked = BatchValidator(context())
    chunked.add_content(content)
    assert list(map(chunked.check_prepared, lines, prepared)) == expected
    digest = hashlib.sha256(content).hexdigest()
    assert chunked.finish([]).content_sha256 == one_by_one.finish([]).content_sha256 == digest
