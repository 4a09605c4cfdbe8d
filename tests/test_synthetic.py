import datetime

import pytest
from stdnum import luhn
from stdnum.cn import ric

from engine.disbursement.resident_id import IdCheck, check_id
from engine.disbursement.results import LineResult
from engine.synthetic import PROFILE_AGES, Population, batch_lines, write_batch_xlsx

TODAY = datetime.date(2026, 1, 1)


@pytest.fixture(scope="module")
def population(shared_data):
    return Population(seed=3, environ={"ONECARD_REFERENCE_DATA": str(shared_data)})


def test_people_are_deterministic_valid_and_distinct(population, shared_data):
    again = Population(seed=3, environ={"ONECARD_REFERENCE_DATA": str(shared_data)})
    people = list(population.people(1000))
    assert people == list(again.people(1000))
    assert len({p.id_number for p in people}) == 1000
    for person in people:
        assert check_id(person.id_number, TODAY) == (IdCheck.valid, "")
        assert ric.calc_check_digit(person.id_number) == person.id_number[-1]
        assert person.id_number[:2] == "51" and person.id_number[:6] in population.counties
        assert luhn.is_valid(person.card_number) and person.card_number.startswith("62")
        assert person.bank_code in {"ABC", "ICBC", "CCB", "BOC", "PSBC", "CDCB", "CDRCB", "SCRCU"}
        assert person.name.encode("gbk")


def test_profiles_give_the_right_ages(population):
    import random

    rng = random.Random(1)
    for profile, (age_min, age_max) in PROFILE_AGES.items():
        for _ in range(200):
            number = population.id_number(rng, profile)
            birth = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
            age = TODAY.year - birth.year - ((TODAY.month, TODAY.day) < (birth.month, birth.day))
            assert age_min <= age <= age_max, (profile, number)


def test_strangers_are_not_registered(population):
    import random

    rng = random.Random(2)
    for _ in range(5):
        assert population.lookup(population.stranger(rng).id_number) is None


def test_other_seed_other_people(population, shared_data):
    other = Population(seed=4, environ={"ONECARD_REFERENCE_DATA": str(shared_data)})
    assert next(other.people(1)) != next(population.people(1))


def test_already_paid_cannot_be_synthesised(population):
    with pytest.raises(ValueError, match="already_paid_in_period"):
        list(batch_lines(population, 10, per_person_max_minor=50_000, bad={LineResult.already_paid_in_period: 1}))


def test_xlsx_writer_with_numeric_ids(population, tmp_path):
    from adapters.batch_file import TabularBatchFile

    planned = list(batch_lines(population, 20, per_person_max_minor=50_000))
    path = tmp_path / "batch.xlsx"
    write_batch_xlsx(path, planned, numeric_ids=True)
    lines = list(TabularBatchFile(path).lines())
    # Numbers ending in X stay text in Excel too; every other one is a damaged number cell.
    assert [("id_number" in line.numeric_fields) for line in lines] == [p.cells[2].isdigit() for p in planned]
    assert [line.amount for line in lines] == [p.cells[4].rstrip("0").rstrip(".") for p in planned]


def test_drawn_people_form_a_registry_covering_the_batch(population, tmp_path):
    drawn = []
    bad = {LineResult.card_not_active: 3, LineResult.name_mismatch: 2, LineResult.cardholder_not_found: 2}
    planned = list(batch_lines(population, 50, per_person_max_minor=50_000, bad=bad, drawn=drawn))
    registry = {p.id_number for p in drawn}
    for line in planned:
        assert (line.cells[2] in registry) is (line.expected is not LineResult.cardholder_not_found)


def test_leap_day_reference_date(shared_data):
    population = Population(seed=1, today=datetime.date(2028, 2, 29),
                            environ={"ONECARD_REFERENCE_DATA": str(shared_data)})
    assert len(list(population.people(50))) == 50
