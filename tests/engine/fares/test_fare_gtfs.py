"""GTFS-Fares v2 loader and pricer: the real Zakroczym feed (fares derived by hand from
its files) and small synthetic feeds for the matching rules the real feed does not use."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.fares.errors import FareRulesError, UnpriceableError
from engine.fares.gtfs import GtfsFares, stop_coordinates
from engine.fares.transfers import DurationLimitType, TransferType

AT = datetime(2026, 3, 2, 7, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def zakroczym(shared_data: Path) -> GtfsFares:
    return GtfsFares.load(shared_data / "transit" / "gtfs_zakroczym_pl")


# Hand-derived from stop_areas.txt (area 1 Zakroczym, 2 Modlin-Twierdza, 3 Nowy Dwór
# Mazowiecki), fare_leg_rules.txt and fare_products.txt (amounts in grosz).
@pytest.mark.parametrize(
    ("from_stop", "to_stop", "product", "amount_minor"),
    [
        ("100", "101", "single_ride_zone1_normal", 0),          # Czarna -> Zaręby-Pętla, both area 1
        ("117", "119-2", "single_ride_zone2_normal", 0),        # within Modlin-Twierdza
        ("120", "219", "single_ride_zone3_normal", 0),          # within Nowy Dwór Mazowiecki
        ("100", "117", "single_ride_zones12_normal", 400),      # Zakroczym -> Modlin-Twierdza
        ("117-2", "224", "single_ride_zones12_normal", 400),    # and back (flr_21)
        ("100", "120", "single_ride_zones13_normal", 500),      # Czarna -> NDM Warszawska-HIT
        ("126", "301-2", "single_ride_zones13_normal", 500),    # NDM Akacjowa -> Wólka Smoszewska (flr_31)
        ("118", "212", "single_ride_zones23_normal", 400),      # Modlin -> NDM Morawicza
        ("219", "119", "single_ride_zones23_normal", 400),
    ],
)
def test_zakroczym_single_rides(zakroczym, from_stop, to_stop, product, amount_minor):
    leg = zakroczym.price_leg(from_stop, to_stop, AT)
    assert (leg.fare_product_id, leg.amount_minor, leg.rider_category_id) == (product, amount_minor, "0")


@pytest.mark.parametrize("category", ["0", "1", "2", "3"])
def test_zakroczym_single_rides_have_no_concession_products(zakroczym, category):
    # Single-ride products exist only for category 0 (Bilet normalny, the default): every
    # rider category pays the regular single fare.
    assert zakroczym.price_leg("100", "120", AT, rider_category_id=category).amount_minor == 500


@pytest.mark.parametrize(
    ("product", "category", "amount_minor"),
    [
        ("monthly_normal", None, 14000),
        ("monthly_normal", "0", 14000),
        ("monthly_discount", "3", 8820),   # seniors, 37 % off
        ("monthly_discount", "2", 7000),   # children to 18, 50 % off
        ("monthly_discount", "1", 0),      # children to 4, free
    ],
)
def test_zakroczym_monthly_products_by_rider_category(zakroczym, product, category, amount_minor):
    assert zakroczym.product_amount(product, category, "1") == amount_minor


def test_zakroczym_feed_facts(zakroczym, shared_data):
    assert zakroczym.currency == "PLN"
    assert str(zakroczym.timezone) == "Europe/Warsaw"
    assert zakroczym.default_rider_category_id == "0"
    assert sorted(zakroczym.rider_categories) == ["0", "1", "2", "3"]
    assert {medium.fare_media_type for medium in zakroczym.fare_media.values()} == {0, 1}
    assert len(zakroczym.stop_areas) == 62
    assert set(stop_coordinates(shared_data / "transit" / "gtfs_zakroczym_pl")) == set(zakroczym.stop_areas)
    with pytest.raises(UnpriceableError, match="monthly_discount"):
        zakroczym.product_amount("monthly_discount", "0")  # a regular rider cannot buy the discount pass


def test_zakroczym_refusals(zakroczym):
    with pytest.raises(UnpriceableError, match="'999'"):
        zakroczym.price_leg("999", "100", AT)
    with pytest.raises(UnpriceableError, match="rider_category_id '7'"):
        zakroczym.price_leg("100", "120", AT, rider_category_id="7")
    with pytest.raises(UnpriceableError, match="no fare product"):
        zakroczym.price_leg("100", "120", AT, fare_media_id="1")  # the monthly paper pass sells no single rides
    with pytest.raises(UnpriceableError, match="no fare product"):
        zakroczym.price_leg("100", None, AT)  # every rule names a to_area


# -- synthetic feeds -----------------------------------------------------------------------

BASE = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\na,A,http://a,Asia/Shanghai\n",
    "areas.txt": "area_id\nA\nB\n",
    "stop_areas.txt": "area_id,stop_id\nA,s1\nB,s2\nA,s3\nB,s3\n",
    "rider_categories.txt": "rider_category_id,rider_category_name,is_default_fare_category\nadult,Adult,1\nsenior,Senior,0\n",
    "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
                    "wk,1,1,1,1,1,0,0,20260101,20261231\n",
    "calendar_dates.txt": "service_id,date,exception_type\nwk,20260303,2\n",
}


def feed(tmp_path: Path, **files: str) -> GtfsFares:
    for name, text in {**BASE, **files}.items():
        (tmp_path / name.replace("__", ".")).write_text(text, encoding="utf-8")
    return GtfsFares.load(tmp_path)


PRODUCTS = ("fare_product_id,amount,currency,rider_category_id\n"
            "any,3.00,CNY,\nab,5.00,CNY,adult\nab,2.50,CNY,senior\npeak,6.00,CNY,\noff,4.00,CNY,\n"
            "disc,-1.00,CNY,\n")


def test_empty_fields_match_only_when_nothing_names_the_value(tmp_path):
    fares = feed(tmp_path, **{
        "fare_products.txt": PRODUCTS,
        "fare_leg_rules.txt": "leg_group_id,from_area_id,to_area_id,fare_product_id\ng1,A,B,ab\ng0,,,any\n",
    })
    assert fares.price_leg("s1", "s2", AT).amount_minor == 500                 # A -> B named
    assert fares.price_leg("s2", "s1", AT).amount_minor == 300                 # B -> A: empty matches
    assert fares.price_leg("s1", "s2", AT, rider_category_id="senior").amount_minor == 250
    assert fares.price_leg("s2", "s1", AT, rider_category_id="senior").amount_minor == 300  # open to all


def test_rule_priority_makes_empty_mean_any(tmp_path):
    fares = feed(tmp_path, **{
        "fare_products.txt": PRODUCTS,
        "fare_leg_rules.txt": "leg_group_id,from_area_id,to_area_id,fare_product_id,rule_priority\n"
                              "g1,A,B,ab,0\ng0,,,any,1\n",
    })
    assert fares.price_leg("s1", "s2", AT).fare_product_id == "any"            # higher priority wins


def test_stop_in_two_areas_and_cheapest_product(tmp_path):
    fares = feed(tmp_path, **{
        "fare_products.txt": PRODUCTS,
        "fare_leg_rules.txt": "leg_group_id,from_area_id,to_area_id,fare_product_id\ng1,A,B,ab\ng2,B,B,any\n",
    })
    # s3 is in A and B: both A->B (5.00) and B->B (3.00) match; the rider pays the cheaper.
    assert fares.price_leg("s3", "s2", AT).amount_minor == 300


def test_timeframes_with_calendar(tmp_path):
    fares = feed(tmp_path, **{
        "fare_products.txt": PRODUCTS,
        "timeframes.txt": "timeframe_group_id,start_time,end_time,service_id\n"
                          "peak,07:30:00,09:00:00,wk\npeak,17:30:00,19:00:00,wk\n",
        "fare_leg_rules.txt": "leg_group_id,from_area_id,to_area_id,from_timeframe_group_id,fare_product_id\n"
                              "g1,A,B,peak,peak\ng2,A,B,,off\n",
    })
    local = lambda day, hour, minute: datetime(2026, 3, day, hour - 8, minute, tzinfo=timezone.utc)  # UTC+8
    assert fares.price_leg("s1", "s2", local(2, 8, 0)).amount_minor == 600     # Monday 08:00 peak
    assert fares.price_leg("s1", "s2", local(2, 9, 0)).amount_minor == 400     # 09:00 end is exclusive
    assert fares.price_leg("s1", "s2", local(2, 17, 30)).amount_minor == 600
    assert fares.price_leg("s1", "s2", local(3, 8, 0)).amount_minor == 400     # service removed on 3 March
    assert fares.price_leg("s1", "s2", local(7, 8, 0)).amount_minor == 400     # Saturday


def test_feed_transfer_rules_load(tmp_path):
    fares = feed(tmp_path, **{
        "fare_products.txt": PRODUCTS,
        "fare_leg_rules.txt": "leg_group_id,from_area_id,to_area_id,fare_product_id\ng1,A,B,ab\ng2,B,A,any\n",
        "fare_transfer_rules.txt": "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,"
                                   "duration_limit_type,fare_transfer_type,fare_product_id\n"
                                   "g1,g2,,5400,1,1,disc\ng1,g1,-1,,,0,\n",
    })
    first, second = fares.transfer_rules
    assert (first.duration_limit_s, first.duration_limit_type, first.fare_transfer_type) == (
        5400, DurationLimitType.DEPARTURE_TO_DEPARTURE, TransferType.FROM_PLUS_TRANSFER_PLUS_TO)
    assert second.transfer_count == -1 and second.fare_product_id is None
    assert fares.product_amount("disc") == -100


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"fare_products.txt": "fare_product_id,amount,currency\nx,12.345,CNY\n"},
         "fare_products.txt row 2 amount: '12.345' has more than 2 decimals for CNY"),
        ({"fare_products.txt": "fare_product_id,amount,currency\nx,1.5e,CNY\n"}, "is not a decimal amount"),
        ({"fare_products.txt": "fare_product_id,amount,currency\nx,1,CNY\ny,1,PLN\n"}, "one currency"),
        ({"fare_products.txt": "fare_product_id,amount,currency,rider_category_id\nx,1,CNY,kid\n"},
         "row 2 rider_category_id: 'kid' is not in rider_categories.txt"),
        ({"fare_leg_rules.txt": "from_area_id,fare_product_id\nZ,any\n"}, "row 2 from_area_id: 'Z' is not in areas.txt"),
        ({"fare_leg_rules.txt": "from_area_id,fare_product_id\nA,nope\n"}, "'nope' is not in fare_products.txt"),
        ({"fare_leg_rules.txt": "from_area_id\nA\n"}, "missing required column(s) fare_product_id"),
        ({"fare_transfer_rules.txt": "from_leg_group_id,to_leg_group_id,fare_transfer_type\ng,g,0\n"},
         "transfer_count: required when from and to leg groups are equal"),
        ({"fare_transfer_rules.txt": "from_leg_group_id,to_leg_group_id,fare_transfer_type\ng,h,7\n"},
         "7 is not a valid TransferType"),
        ({"timeframes.txt": "timeframe_group_id,start_time,end_time,service_id\np,09:00:00,07:00:00,wk\n"},
         "end_time must be after start_time"),
        ({"timeframes.txt": "timeframe_group_id,start_time,end_time,service_id\np,9am,10am,wk\n"},
         "'9am' is not HH:MM:SS"),
    ],
)
def test_malformed_feeds_are_refused_naming_the_field(tmp_path, files, message):
    defaults = {"fare_products.txt": PRODUCTS,
                "fare_leg_rules.txt": "leg_group_id,from_area_id,fare_product_id\ng,A,any\nh,B,any\n"}
    with pytest.raises(FareRulesError) as error:
        feed(tmp_path, **{**defaults, **files})
    assert message in str(error.value)
