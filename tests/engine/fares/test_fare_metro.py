"""Chengdu distance bands and the packaged Line 1 network."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.fares.bands import DistanceBands
from engine.fares.config import packaged_config
from engine.fares.errors import FareRulesError, UnpriceableError
from engine.fares.stations import StationNetwork

LINE1 = packaged_config("chengdu_line1.csv")


@pytest.fixture(scope="module")
def bands(shared_data: Path) -> DistanceBands:
    return DistanceBands.load(shared_data / "transit" / "china_metro" / "chengdu_metro_fare_bands.csv")


@pytest.fixture(scope="module")
def line1() -> StationNetwork:
    return StationNetwork.load(LINE1)


@pytest.mark.parametrize(
    ("distance_m", "fare_minor"),
    [(0, 200), (1, 200), (4000, 200), (4001, 300), (8000, 300), (12000, 400), (12001, 500),
     (18000, 500), (24000, 600), (32000, 700), (40000, 800), (50000, 900), (70000, 1000),
     (70001, 1100), (90000, 1100), (110000, 1200)],
)
def test_chengdu_band_edges(bands, distance_m, fare_minor):
    # Bands from chengdu_metro_fare_bands.csv: lower bound exclusive, upper inclusive.
    assert bands.fare_minor(distance_m) == fare_minor


def test_beyond_the_last_band_is_unpriceable(bands):
    with pytest.raises(UnpriceableError, match="110001 m"):
        bands.fare_minor(110001)


@pytest.mark.parametrize(
    ("origin", "destination", "distance_m", "fare_minor"),
    [
        ("tianfuguangchang", "tianfuguangchang", 0, 200),
        ("tianfuguangchang", "luomashi", 1018, 200),
        ("weijianian", "wenshuyuan", 1514 + 1593 + 1180 + 1351, 300),           # 5.638 km
        ("huochebeizhan", "huochenanzhan", 13336 - 3107, 400),                  # 10.229 km
        ("weijianian", "shijicheng", 19067, 6 * 100),                           # 19.067 km: 18-24 band
        ("weijianian", "kexuecheng", 37474, 800),                               # whole main line
        ("kexuecheng", "weijianian", 37474, 800),
        ("weijianian", "wugensong", 23403 + 1033 + 1396, 700),                  # branch via Sihe: 25.832 km
        ("kexuecheng", "wugensong", 37474 - 23403 + 1033 + 1396, 500),          # across the Y at Sihe: 16.5 km
    ],
)
def test_line1_distances_and_fares(line1, bands, origin, destination, distance_m, fare_minor):
    assert line1.distance_m(origin, destination) == distance_m
    assert bands.fare_minor(distance_m) == fare_minor


def test_line1_shape(line1):
    assert len(line1.stations) == 35  # 33 on the main line, 2 on the Wugensong branch
    assert line1.stations["tianfuguangchang"].name_zh == "天府广场"
    assert line1.stations["huochebeizhan"].name_en == "North Railway Station"
    with pytest.raises(UnpriceableError, match="'nowhere'"):
        line1.distance_m("nowhere", "sihe")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("line_id,station_id,name_zh,name_en,previous_station_id,distance_from_previous_km\n"
         "1,a,甲,A,,\n1,b,乙,B,a,1.2345\n", "at most 3 decimals"),
        ("line_id,station_id,name_zh,name_en,previous_station_id,distance_from_previous_km\n"
         "1,a,甲,A,,\n1,b,乙,B,z,1.2\n", "'z' is not a station"),
        ("line_id,station_id,name_zh,name_en,previous_station_id,distance_from_previous_km\n"
         "1,a,甲,A,,\n2,b,乙,B,,\n", "cannot reach"),
        ("line_id,station_id,name_zh,name_en,previous_station_id,distance_from_previous_km\n"
         "1,a,甲,A,,\n1,b,乙,B,a,0\n", "0 km apart"),
    ],
)
def test_bad_network_files(tmp_path, text, message):
    path = tmp_path / "net.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FareRulesError, match=message):
        StationNetwork.load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_km_exclusive,max_km_inclusive,fare_cny\n0,4,2\n5,8,3\n", "must start at 4.0 km"),
        ("min_km_exclusive,max_km_inclusive,fare_cny\n0,4,3\n4,8,2\n", "fare falls"),
        ("min_km_exclusive,max_km_inclusive,fare_cny\n0,4,2.005\n", "more than 2 decimals"),
        ("min_km_exclusive,max_km_inclusive,fare\n0,4,2\n", "fare_<currency>"),
    ],
)
def test_bad_band_files(tmp_path, text, message):
    path = tmp_path / "bands.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FareRulesError, match=message):
        DistanceBands.load(path)
