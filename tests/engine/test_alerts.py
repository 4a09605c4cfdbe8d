"""Abnormal-usage alert rules: thresholds, evidence, state bounds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from engine.alerts import (RECENT_TAPS_MAX, AlertError, AlertState, AlertThresholds, AlertType, CardUsage,
                           check_usage, distance_from, haversine_m)
from engine.fares.config import packaged_config
from engine.fares.stations import StationNetwork

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
LINE1 = StationNetwork.load(packaged_config("chengdu_line1.csv"))
DISTANCE = distance_from({"metro": LINE1.distance_m}, {("bus", "czarna"): (52.51630, 20.60805),
                                                       ("bus", "ndm"): (52.43000, 20.71000)})


def usage(tap_id, atc, seconds, station="tianfuguangchang", arqc=None, network="metro", is_entry=True):
    return CardUsage(tap_id, "card-1", atc, arqc or f"{atc:016X}", network, station, T0 + timedelta(seconds=seconds),
                     is_entry)


def run(usages, thresholds=AlertThresholds()):
    state, alerts = AlertState(), []
    for item in usages:
        found, state = check_usage(state, item, thresholds, DISTANCE)
        alerts.extend(found)
    return alerts, state


def test_normal_commute_raises_nothing():
    alerts, state = run([usage("1", 10, 0, "weijianian"), usage("2", 11, 50 * 60, "kexuecheng", is_entry=False),
                         usage("3", 12, 9 * 3600, "kexuecheng"), usage("4", 13, 10 * 3600, "weijianian", is_entry=False)])
    assert alerts == [] and state.highest_atc == 13


def test_atc_jump():
    alerts, _ = run([usage("1", 10, 0), usage("2", 60, 3600), usage("3", 200, 7200)])  # +50 is allowed
    assert [(alert.type, alert.tap_id, alert.evidence["jump"]) for alert in alerts] == [(AlertType.ATC_JUMP, "3", 140)]


def test_same_atc_different_arqc_is_a_clone_sign():
    alerts, _ = run([usage("1", 10, 0, arqc="00112233445566AA"), usage("2", 10, 600, arqc="00112233445566aa"),
                     usage("3", 10, 1200, arqc="FFEEDDCCBBAA9988")])
    assert [(alert.type, alert.tap_id) for alert in alerts] == [(AlertType.CLONED_CARD, "3")]
    assert alerts[0].evidence == {"atc": 10, "arqc_seen": "00112233445566AA", "arqc_now": "FFEEDDCCBBAA9988"}


def test_impossible_travel_on_the_metro_and_by_coordinates():
    # Weijianian -> Science City is 37.474 km of track: 5 minutes apart is 450 km/h.
    alerts, _ = run([usage("1", 10, 0, "weijianian"), usage("2", 11, 300, "kexuecheng")])
    assert [alert.type for alert in alerts] == [AlertType.IMPOSSIBLE_TRAVEL]
    assert alerts[0].evidence["distance_m"] == 37474 and alerts[0].evidence["seconds"] == 300
    # 30 minutes apart is 75 km/h: possible.
    assert run([usage("1", 10, 0, "weijianian"), usage("2", 11, 1800, "kexuecheng")])[0] == []
    # Neighbouring stations within seconds (clock skew) are under the minimum distance.
    assert run([usage("1", 10, 0, "tianfuguangchang"), usage("2", 11, 5, "luomashi")])[0] == []
    # Bus stops by coordinates: about 11 km in 2 minutes.
    alerts, _ = run([usage("1", 10, 0, "czarna", network="bus"), usage("2", 11, 120, "ndm", network="bus")])
    assert [alert.type for alert in alerts] == [AlertType.IMPOSSIBLE_TRAVEL]
    # Unknown places never alert.
    assert run([usage("1", 10, 0, "x", network="tram"), usage("2", 11, 1, "y", network="tram")])[0] == []


def test_late_entries_are_judged_in_time_order():
    # An entry arriving after a later one (offline upload): 30 minutes apart either way is
    # possible, and the later entry stays the one the next entry is compared with.
    alerts, state = run([usage("2", 11, 1800, "kexuecheng"), usage("1", 10, 0, "weijianian")])
    assert alerts == [] and state.last_entry.station_id == "kexuecheng"
    # Arriving late does not make a 5-minute trip possible.
    alerts, _ = run([usage("2", 11, 300, "kexuecheng"), usage("1", 10, 0, "weijianian")])
    assert [(alert.type, alert.evidence["seconds"]) for alert in alerts] == [(AlertType.IMPOSSIBLE_TRAVEL, 300)]


def test_tap_burst():
    alerts, _ = run([usage(str(index), 10 + index, index * 5) for index in range(8)])
    assert [(alert.type, alert.tap_id, alert.evidence["taps"]) for alert in alerts] == [
        (AlertType.TAP_BURST, "6", 7), (AlertType.TAP_BURST, "7", 8)]
    quiet, _ = run([usage(str(index), 10 + index, index * 5) for index in range(8)],
                   AlertThresholds(burst_taps_max=10))
    assert quiet == []


def test_state_stays_bounded():
    _, state = run([usage(str(index), index, index * 3600) for index in range(200)])
    assert len(state.recent_taps_utc) == RECENT_TAPS_MAX
    assert len(state.recent_cryptograms) == 32
    assert msgspec.json.decode(msgspec.json.encode(state), type=AlertState) == state


def test_thresholds_from_toml(tmp_path):
    path = tmp_path / "alerts.toml"
    path.write_text("[alerts]\natc_jump_max = 20\nburst_window_s = 30\n", encoding="utf-8")
    assert AlertThresholds.load(path) == AlertThresholds(atc_jump_max=20, burst_window_s=30)
    path.write_text("[alerts]\natc_jump = 20\n", encoding="utf-8")
    with pytest.raises(AlertError, match="atc_jump"):
        AlertThresholds.load(path)
    with pytest.raises(AlertError, match="burst_taps_max: must be 1 to 1000000000"):
        AlertThresholds(burst_taps_max=0)


def test_haversine():
    assert 11_000 < haversine_m((52.51630, 20.60805), (52.43000, 20.71000)) < 12_000
