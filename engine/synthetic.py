"""Synthetic cardholders and batch files for demos, tests and benchmarks (deterministic by seed).

Identity numbers follow GB 11643 with real 2023 Sichuan (51xxxx) county codes from
``identity/admin_divisions_2023/areas.csv``; card numbers are Luhn-valid 19-digit debit
numbers on BINs of banks that issue Sichuan social-security cards (ABC, ICBC, CCB, BOC,
PSBC, Chengdu Bank, Chengdu Rural Commercial Bank, Sichuan rural credit unions) from the
BIN table (UnionPay ``62`` prefixes). Names are common surnames and given-name characters (all encodable in GBK).

The registry of a :class:`Population` is a pure function of the seed and the identity
number (:meth:`Population.lookup`): whether a number is registered, its name, card,
status and categories are derived from a keyed BLAKE2b hash of the number. Benchmarks can
therefore validate millions of lines against "the registry" without holding it in memory,
and a cardholder file written by :func:`write_cardholders_csv` agrees with it. Card
numbers are 12 derived digits, so two people share one with probability ~n²/2·10¹²
(about 0.5 for a million people); only registry imports would notice.

These numbers are well-formed, so any of them *can* belong to a real person: use them in
test fixtures and demos only.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

import msgspec
from stdnum import luhn

from engine.disbursement.amount import format_minor, parse_amount
from engine.disbursement.bank_card import BinTable
from engine.disbursement.errors import AmountFormatError
from engine.disbursement.registry import CardholderRecord, CardStatus, Category
from engine.disbursement.resident_id import check_character
from engine.disbursement.results import LineResult
from engine.reference_data import reference_file

AREAS_FILE = "identity/admin_divisions_2023/areas.csv"
PROVINCE_CODE = "51"
REFERENCE_DATE = datetime.date(2026, 1, 1)
SICHUAN_CARD_BANKS = frozenset({"ABC", "ICBC", "CCB", "BOC", "PSBC", "CDCB", "CDRCB", "SCRCU"})
PAN_LENGTH = 19
# Financial social-security cards are UnionPay debit cards.
UNIONPAY_PREFIX = "62"
UNREGISTERED_BYTE = 0
LOST_BYTE_MAX = 6
CLOSED_BYTE_MAX = 10
DISABLED_BYTE_MAX = 8

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
            "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN_CHARACTERS = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彬鑫斌宇浩凯健俊帆帅旭宁"
                    "婷琳晶欣悦雪琴云莲真环荣爱妹霞香月莺媛瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩")
# 𠀚 (U+2001A) is outside GBK and the Basic Multilingual Plane: GB18030 must keep it.
RARE_CHARACTER = "\U0002001a"

BATCH_HEADER = ("序号", "姓名", "身份证号", "社会保障卡号", "金额（元）", "补贴项目", "备注")
CARDHOLDER_HEADER = ("身份证号码", "姓名", "社会保障卡号", "状态", "类别")
AMOUNT_CELL = re.compile(r"-?[0-9]+\.[0-9]{2}")
STATUS_WORDS = {CardStatus.active: "正常", CardStatus.lost: "挂失", CardStatus.closed: "注销"}
CATEGORY_WORDS = {Category.senior: "老年人", Category.disabled: "残疾人", Category.student: "学生"}


class Profile(StrEnum):
    """Age groups, with the ages (in whole years on the reference date) they cover."""

    senior_70_plus = "senior_70_plus"
    senior_60_69 = "senior_60_69"
    student = "student"
    adult = "adult"


PROFILE_AGES = {
    Profile.senior_70_plus: (70, 95),
    Profile.senior_60_69: (60, 69),
    Profile.student: (6, 22),
    Profile.adult: (23, 59),
}
PROFILE_WEIGHTS = {Profile.adult: 50, Profile.senior_60_69: 15, Profile.senior_70_plus: 15, Profile.student: 20}
STUDENT_AGE_MAX = PROFILE_AGES[Profile.student][1]
SENIOR_AGE_MIN = PROFILE_AGES[Profile.senior_60_69][0]


class Person(msgspec.Struct, frozen=True):
    """A synthetic person: identity number, name, card (PAN, bank code), card status, categories."""

    id_number: str
    name: str
    card_number: str
    bank_code: str
    status: CardStatus
    categories: frozenset[Category]

    def record(self, pan_token: str) -> CardholderRecord:
        """This person as a registry record, with ``pan_token`` for the card."""
        return CardholderRecord(self.id_number, self.name, self.status, pan_token,
                                self.card_number[-4:], self.bank_code, self.categories)


def _years_before(day: datetime.date, years: int) -> datetime.date:
    """The same day ``years`` earlier (28 February for a 29 February without a match)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _age(birth: datetime.date, on: datetime.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


class Population:
    """A deterministic population and its registry (see the module docstring).

    Parameters
    ----------
    seed : int
        Same seed, same people, same registry.
    today : datetime.date
        The reference date for ages.
    environ : dict | None
        Environment for ``ONECARD_REFERENCE_DATA`` (default ``os.environ``).

    Raises
    ------
    ReferenceDataError
        The reference data is missing.

    >>> population = Population(seed=7)
    >>> person = next(population.people(1))
    >>> population.lookup(person.id_number) == person
    True
    """

    def __init__(self, seed: int = 1, *, today: datetime.date = REFERENCE_DATE,
                 environ: dict[str, str] | None = None) -> None:
        self.seed = seed
        self.today = today
        with open(reference_file(AREAS_FILE, environ), encoding="utf-8", newline="") as stream:
            self.counties = sorted(row["code"] for row in csv.DictReader(stream)
                                   if row["provinceCode"] == PROVINCE_CODE)
        self.bins = [e for e in BinTable.load(environ).bins_of(set(SICHUAN_CARD_BANKS))
                     if e.length == PAN_LENGTH and e.prefix.startswith(UNIONPAY_PREFIX)]
        assert self.counties and self.bins, "reference data has Sichuan counties and bank BINs"
        self._key = seed.to_bytes(8, "big", signed=True)

    def _digest(self, id_number: str) -> bytes:
        return hashlib.blake2b(id_number.encode(), digest_size=16, key=self._key).digest()

    def id_number(self, rng: random.Random, profile: Profile) -> str:
        """A valid identity number of a person in ``profile``, drawn with ``rng``."""
        age_min, age_max = PROFILE_AGES[profile]
        latest = _years_before(self.today, age_min) - datetime.timedelta(days=1)
        earliest = _years_before(self.today, age_max + 1) + datetime.timedelta(days=1)
        birth = earliest + datetime.timedelta(days=rng.randrange((latest - earliest).days + 1))
        first17 = f"{rng.choice(self.counties)}{birth:%Y%m%d}{rng.randrange(1000):03d}"
        return first17 + check_character(first17)

    def lookup(self, id_number: str) -> Person | None:
        """The registered person with this (valid) identity number, or ``None``."""
        digest = self._digest(id_number)
        if digest[0] == UNREGISTERED_BYTE:
            return None
        return self._person(id_number, digest)

    def _person(self, id_number: str, digest: bytes) -> Person:
        surname = SURNAMES[int.from_bytes(digest[2:4], "big") % len(SURNAMES)]
        given_length = 1 + digest[8] % 2
        given = "".join(GIVEN_CHARACTERS[digest[4 + 2 * i] % len(GIVEN_CHARACTERS)] for i in range(given_length))
        bin_entry = self.bins[int.from_bytes(digest[9:11], "big") % len(self.bins)]
        account_digits = PAN_LENGTH - len(bin_entry.prefix) - 1
        account = int.from_bytes(digest[11:16], "big") % 10**account_digits
        body = f"{bin_entry.prefix}{account:0{account_digits}d}"
        status = (CardStatus.lost if digest[1] < LOST_BYTE_MAX
                  else CardStatus.closed if digest[1] < CLOSED_BYTE_MAX else CardStatus.active)
        birth = datetime.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
        age = _age(birth, self.today)
        categories = {Category.senior} if age >= SENIOR_AGE_MIN else set()
        if age <= STUDENT_AGE_MAX:
            categories.add(Category.student)
        if digest[12] < DISABLED_BYTE_MAX:
            categories.add(Category.disabled)
        return Person(id_number, surname + given, body + luhn.calc_check_digit(body),
                      bin_entry.bank_code, status, frozenset(categories))

    def people(self, count: int, *, weights: Mapping[Profile, int] = PROFILE_WEIGHTS,
               stream: int = 0) -> Iterator[Person]:
        """``count`` distinct registered people (any status), drawn by profile ``weights``.

        ``stream`` selects an independent sequence for the same seed.
        """
        rng = random.Random(self.seed * 1_000_003 + stream)
        profiles, profile_weights = list(weights), list(weights.values())
        seen: set[str] = set()
        while len(seen) < count:
            id_number = self.id_number(rng, rng.choices(profiles, profile_weights)[0])
            person = self.lookup(id_number)
            if person is not None and id_number not in seen:
                seen.add(id_number)
                yield person

    def stranger(self, rng: random.Random) -> Person:
        """A person with a valid identity number that is *not* registered."""
        while True:
            id_number = self.id_number(rng, Profile.adult)
            digest = self._digest(id_number)
            if digest[0] == UNREGISTERED_BYTE:
                return self._person(id_number, digest)


class SyntheticLine(msgspec.Struct, frozen=True):
    """One batch line to write: its cells (in ``BATCH_HEADER`` order, amount as written) and
    the result validation must give it."""

    cells: tuple[str, ...]
    expected: LineResult


def _damaged_id(kind: LineResult, id_number: str) -> str:
    if kind is LineResult.invalid_id_format:
        return id_number[:17]
    if kind is LineResult.id_in_scientific_notation:
        return f"{id_number[0]}.{id_number[1:6]}E+17"
    # Excel's 15 significant digits: the last three characters become zeros, unless that
    # happens to be the right check character, in which case one digit is altered.
    zeroed = id_number[:15] + "000"
    if check_character(zeroed[:17]) != "0":
        return zeroed
    altered = "1" if id_number[17] != "1" else "2"
    return id_number[:17] + altered


def _recorded(people: Iterator[Person], drawn: list[Person] | None) -> Iterator[Person]:
    for person in people:
        if drawn is not None:
            drawn.append(person)
        yield person


def batch_lines(population: Population, count: int, *, per_person_max_minor: int,
                bad: Mapping[LineResult, int] | None = None,
                amounts_minor: Sequence[int] = (10_000, 15_050, 30_000, 8_000),
                item: str = "高龄津贴", stream: int = 1,
                drawn: list[Person] | None = None) -> Iterator[SyntheticLine]:
    """``count`` batch lines, ``bad[kind]`` of them made to fail with ``kind``, the rest good.

    Bad lines sit at seeded random positions after the first line. Every kind except
    ``already_paid_in_period`` (which depends on payment history) can be made. When
    ``drawn`` is given, every registered person the lines were drawn from (active or not)
    is appended to it: written with :func:`write_cardholders_csv`, it is a registry that
    covers the batch exactly (strangers, for ``cardholder_not_found``, are left out).

    Raises
    ------
    ValueError
        More bad lines than ``count - 1``, an amount over ``per_person_max_minor``, or
        ``already_paid_in_period`` requested.
    """
    bad = dict(bad or {})
    if LineResult.already_paid_in_period in bad or LineResult.ok in bad:
        raise ValueError("already_paid_in_period and ok cannot be requested as bad lines")
    if sum(bad.values()) > count - 1:
        raise ValueError(f"{sum(bad.values())} bad lines do not fit in {count} lines")
    if max(amounts_minor) > per_person_max_minor:
        raise ValueError("amounts_minor must not exceed per_person_max_minor")
    rng = random.Random(population.seed * 7919 + stream)
    kinds = [k for k, n in sorted(bad.items()) for _ in range(n)]
    positions = dict(zip(rng.sample(range(1, count), len(kinds)), kinds)) if kinds else {}
    people = _recorded(population.people(10**12, stream=stream), drawn)
    inactive: list[Person] = []
    last_good: tuple[str, ...] | None = None

    def next_person(active: bool) -> Person:
        if not active and inactive:
            return inactive.pop()
        for person in people:
            if (person.status is CardStatus.active) == active:
                return person
            if person.status is not CardStatus.active:
                inactive.append(person)
        raise AssertionError("the population is unbounded")

    for index in range(count):
        kind = positions.get(index, LineResult.ok)
        sequence = str(index + 1)
        if kind is LineResult.duplicate_in_batch:
            assert last_good is not None
            yield SyntheticLine((sequence,) + last_good[1:], kind)
            continue
        if kind is LineResult.cardholder_not_found:
            person = population.stranger(rng)
        else:
            person = next_person(active=kind is not LineResult.card_not_active)
        id_text, name, card, amount_minor = person.id_number, person.name, person.card_number, rng.choice(amounts_minor)
        amount_text = format_minor(amount_minor)
        if kind in (LineResult.invalid_id_format, LineResult.invalid_id_checksum, LineResult.id_in_scientific_notation):
            id_text = _damaged_id(kind, person.id_number)
        elif kind is LineResult.name_mismatch:
            name = next(p.name for p in people if p.name != person.name)
        elif kind is LineResult.account_mismatch:
            card = population.stranger(rng).card_number
        elif kind is LineResult.invalid_amount_format:
            amount_text = "一百元"
        elif kind is LineResult.amount_not_positive:
            amount_text = rng.choice(("0.00", "-50.00"))
        elif kind is LineResult.amount_precision:
            amount_text = "12.345"
        elif kind is LineResult.amount_over_limit:
            amount_text = format_minor(per_person_max_minor + 1)
        cells = (sequence, name, id_text, card, amount_text, item, "")
        if kind is LineResult.ok:
            last_good = cells
        yield SyntheticLine(cells, kind)


def _readable_yuan(text: str) -> Decimal:
    """An amount cell's exact yuan for a file's totals; 0 for an unreadable cell."""
    try:
        return parse_amount(text)
    except AmountFormatError:
        return Decimal(0)


def write_batch_csv(path: Path, lines: Iterable[SyntheticLine], *, encoding: str = "utf-8",
                    totals: str = "row") -> None:
    """Write a batch CSV in ``encoding`` (``utf-8``, ``utf-8-sig``, ``gbk``, ``gb18030``).

    ``totals``: ``"row"`` appends a ``合计`` row (count and amount), ``"header"`` writes
    ``笔数``/``总金额`` before the header (``lines`` is then read twice, so pass a list),
    ``"none"`` writes none. Amounts that are not whole fen are summed exactly.
    """
    assert totals in ("row", "header", "none")
    with open(path, "w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream)
        if totals == "header":
            amount = sum((_readable_yuan(line.cells[4]) for line in lines), Decimal(0))
            writer.writerow(("笔数", sum(1 for _ in lines), "总金额", amount))
        writer.writerow(BATCH_HEADER)
        count, amount = 0, Decimal(0)
        for line in lines:
            writer.writerow(line.cells)
            count += 1
            amount += _readable_yuan(line.cells[4])
        if totals == "row":
            writer.writerow(("合计", f"共{count}人", "", "", amount, "", ""))


def write_batch_xlsx(path: Path, lines: Iterable[SyntheticLine], *, numeric_ids: bool = False) -> None:
    """Write a batch XLSX (one sheet, header row, text cells; amounts as numbers).

    ``numeric_ids=True`` stores identity numbers as number cells, as Excel does when a
    column is not formatted as text (the value keeps only 15 significant digits).
    """
    import openpyxl  # imported here: CSV-only runs do not pay for it

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("发放明细")
    sheet.append(BATCH_HEADER)
    for line in lines:
        cells: list[object] = list(line.cells)
        if numeric_ids and cells[2].isdigit():
            # Not money: this reproduces what Excel stores for an unformatted ID cell.
            cells[2] = float(cells[2])
        if AMOUNT_CELL.fullmatch(cells[4]):
            cells[4] = Decimal(cells[4])
        sheet.append(cells)
    workbook.save(path)


def write_cardholders_csv(path: Path, people: Iterable[Person], *, encoding: str = "utf-8") -> None:
    """Write a cardholder import file (``CARDHOLDER_HEADER``, Chinese status and category words)."""
    with open(path, "w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CARDHOLDER_HEADER)
        for person in people:
            categories = ";".join(CATEGORY_WORDS[c] for c in sorted(person.categories))
            writer.writerow((person.id_number, person.name, person.card_number,
                             STATUS_WORDS[person.status], categories))
