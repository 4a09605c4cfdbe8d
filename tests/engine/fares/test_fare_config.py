"""Building a fare engine from TOML: the packaged Chengdu demo, a GTFS network with the
feed's own transfer rules, and refused configurations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.fares.config import load_engine
from engine.fares.errors import FareRulesError
from engine.fares.pricing import Rule, TapFacts, TapKind
from engine.fares.state import CardFareState


def test_packaged_chengdu_engine(shared_data):
    engine = load_engine(shared_data=shared_data)
    assert sorted(engine.networks) == ["bus", "metro", "tram"]
    assert (engine.currency, str(engine.timezone), engine.day_boundary.isoformat()) == ("CNY", "Asia/Shanghai", "04:30:00")
    assert (engine.caps.daily_minor, engine.caps.weekly_minor, engine.journey_max_s) == (2000, 8000, 240 * 60)
    assert engine.max_fare_minor == 800 and engine.transfer_products == {"bus_metro_discount": -100}


FEED = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\na,A,http://a,Europe/Warsaw\n",
    "areas.txt": "area_id\nA\nB\n",
    "stop_areas.txt": "area_id,stop_id\nA,a1\nB,b1\n",
    "fare_products.txt": "fare_product_id,amount,currency\nride,4.00,PLN\nlocal,2.00,PLN\nxfer,0.50,PLN\n",
    "fare_leg_rules.txt": "leg_group_id,from_area_id,to_area_id,fare_product_id\n"
                          "zones,A,B,ride\nzones,B,A,ride\nlocal,A,A,local\nlocal,B,B,local\n",
    # From a zone ride to a local ride within 30 min (departure to departure): pay the
    # transfer product instead of the local fare (A + AB).
    "fare_transfer_rules.txt": "from_leg_group_id,to_leg_group_id,duration_limit,duration_limit_type,"
                              "fare_transfer_type,fare_product_id\nzones,local,1800,1,0,xfer\n",
}


def test_gtfs_network_uses_the_feeds_transfer_rules(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    for name, text in FEED.items():
        (feed / name).write_text(text, encoding="utf-8")
    config = tmp_path / "engine.toml"
    config.write_text('currency = "PLN"\ntimezone = "Europe/Warsaw"\nday_boundary = "03:00"\n'
                      '[[network]]\nid = "bus"\nkind = "gtfs"\nfeed = "feed"\npairing = "entry_exit"\n',
                      encoding="utf-8")
    engine = load_engine(config)
    at = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    state, charged = CardFareState(), []
    for index, (stop, kind, minutes) in enumerate([("a1", "entry", 0), ("b1", "exit", 15),
                                                   ("b1", "entry", 20), ("b1", "exit", 25),
                                                   ("b1", "entry", 60), ("b1", "exit", 70)]):
        result = engine.price_tap(state, TapFacts(str(index), "bus", stop, TapKind(kind), at + timedelta(minutes=minutes)))
        state = result.state
        charged.append(result.fare_minor)
    assert charged == [0, 400, 0, 50, 0, 200]   # ride 4.00, transfer 0.50 instead of 2.00, later a full local ride
    assert result.applied[0].rule is Rule.GTFS_FARE and result.applied[0].detail == "local"
    assert engine.caps.daily_minor is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\ncolour = 1\n', "unknown key(s) ['colour']"),
        ('currency = "CNY"\ntimezone = "Mars/Olympus"\n[[network]]\nid="b"\nkind="flat"\nfare="2"\n', "IANA"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n', "no [[network]]"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n[[network]]\nid="b"\nkind="boat"\n', "'boat'"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n[[network]]\nid="b"\nkind="flat"\nfare="2.001"\n',
         "network 1 fare: '2.001' has more than 2 decimals"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n[[network]]\nid="m"\nkind="distance"\n'
         'stations="{shared_data}/x.csv"\nbands="b.csv"\n', "no shared_data folder was given"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n[[network]]\nid="m"\nkind="distance"\n'
         'stations="x.csv"\nbands="b.csv"\n', "x.csv: file not found"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n[[network]]\nid="z"\nkind="gtfs"\nfeed="nofeed"\n',
         "fare_leg_rules.txt and fare_products.txt are required"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n[caps]\ndaily = "-1"\n'
         '[[network]]\nid="b"\nkind="flat"\nfare="2"\n', "caps.daily: '-1' must not be negative"),
        ('currency = "CNY"\ntimezone = "Asia/Shanghai"\n[[network]]\nid="b"\nkind="flat"\nfare="2"\n'
         '[[transfer]]\nfare_transfer_type = 1\nfare_product_id = "d"\n', "transfer 1: amount is required"),
    ],
)
def test_bad_configurations(tmp_path, text, message):
    path = tmp_path / "engine.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FareRulesError) as error:
        load_engine(path)
    assert message in str(error.value)
