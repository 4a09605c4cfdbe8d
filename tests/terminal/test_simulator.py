"""Gate simulator: valid cryptograms, labelled faults, realistic rides, sending over HTTP."""

import collections
from pathlib import Path

import pytest

from hsm import scheme as schemes
from terminal.gate import card_hash
from terminal.simulator import (ACCESS_S_MAX, ACCESS_S_MIN, STATION_SPACING_M, TRAIN_SPEED_M_PER_S,
                                Fault, Simulation, send_taps)
from terminal.tap import transaction_data

ALL_SCHEMES = sorted(schemes.SCHEMES)


def _verifies(simulation, tap):
    scheme = schemes.SCHEMES[simulation.scheme_of(tap.pan)]
    imk = simulation.issuer_master_keys[simulation.scheme_of(tap.pan)]
    key = schemes.icc_master_key(scheme, imk, tap.pan, tap.psn)
    un = bytes.fromhex(tap.un) if scheme.session_key_derivation == "mastercard" else b""
    session = schemes.session_key(scheme, key, tap.atc.to_bytes(2, "big"), un=un)
    return schemes.verify_application_cryptogram(
        scheme, session, transaction_data(tap, scheme.session_key_derivation), bytes.fromhex(tap.arqc))


def test_faults_are_what_their_label_says():
    simulation = Simulation(cards=40, gates=8, bad_share=0.3, seed=3, schemes=ALL_SCHEMES)
    deny_list = simulation.deny_list()
    salt = bytes.fromhex(deny_list.salt)
    atcs_seen: dict[str, set[int]] = collections.defaultdict(set)
    faults = collections.Counter()
    for item in simulation.taps(600):
        tap, fault = item
        faults[fault] += 1
        denied = card_hash(salt, tap.pan) in deny_list.cards
        assert denied == (fault is Fault.deny_listed)
        assert _verifies(simulation, tap) == (fault is not Fault.wrong_arqc)
        replayed = tap.atc in atcs_seen[tap.pan]
        assert replayed == (fault is Fault.replayed_atc)
        atcs_seen[tap.pan].add(tap.atc)
    assert set(faults) == set(Fault)
    assert 0.2 < (600 - faults[Fault.none]) / 600 < 0.4
    assert {simulation.scheme_of(pan) for pan in atcs_seen} == set(ALL_SCHEMES)


def test_good_riders_alternate_entry_and_exit_at_different_stations_in_time_order():
    simulation = Simulation(cards=20, gates=12, seed=5)
    last = {}
    previous_time = None
    for tap, fault in simulation.taps(300):
        assert fault is Fault.none and _verifies(simulation, tap)
        if previous_time is not None:
            assert tap.local_time >= previous_time
        previous_time = tap.local_time
        before = last.get(tap.pan)
        expected = "entry" if before is None or before.direction == "exit" else "exit"
        assert tap.direction == expected
        if expected == "exit":
            assert tap.station != before.station
        last[tap.pan] = tap


def test_same_seed_same_stream_and_unique_tap_ids():
    first = [item.tap for item in Simulation(cards=5, gates=3, seed=9, bad_share=0.5).taps(50)]
    second = [item.tap for item in Simulation(cards=5, gates=3, seed=9, bad_share=0.5).taps(50)]
    assert first == second
    assert len({tap.tap_id for tap in first}) == 50


def test_single_gate_is_a_flat_fare_validator():
    (item,) = Simulation(cards=1, gates=1).taps(1)
    assert (item.tap.direction, item.tap.gate_id) == ("single", "G0000")


@pytest.mark.parametrize("kwargs, message", [
    (dict(cards=0, gates=1), "cards: must be 1.."),
    (dict(cards=1, gates=0), "gates: must be 1.."),
    (dict(cards=1, gates=1, bad_share=0.1), "cards: at least 2"),
    (dict(cards=2, gates=1, bad_share=1.5), "bad_share: must be 0..1"),
    (dict(cards=2, gates=1, schemes=["nope"]), "schemes: unknown ['nope']"),
])
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError) as caught:
        Simulation(**kwargs)
    assert message in str(caught.value)


def test_keys_stay_out_of_repr():
    simulation = Simulation(cards=2, gates=2, bad_share=0.1)
    text = repr(simulation) + repr(simulation.cards[0])
    for key in list(simulation.issuer_master_keys.values()) + list(simulation.gate_keys.values()):
        assert key.hex() not in text.lower()


async def test_send_taps_over_http(fake_engine, tmp_path):
    simulation = Simulation(cards=10, gates=4, bad_share=0.3, seed=11)
    for gate_id, key in simulation.gate_keys.items():
        fake_engine.add_gate(gate_id, key)
    fake_engine.deny_list = simulation.deny_list()
    items = list(simulation.taps(80))
    outcomes = await send_taps((item.tap for item in items), fake_engine.url, simulation.gate_keys,
                               tmp_path, concurrency=8)
    denied = sum(item.fault is Fault.deny_listed for item in items)
    assert outcomes == collections.Counter({"approved": 80 - denied, "declined/card_lost": denied})
    assert set(fake_engine.taps) == {item.tap.tap_id for item in items}


async def test_a_refused_gate_stops_the_run_and_leaves_no_task_behind(fake_engine, tmp_path, caplog):
    import asyncio
    import gc

    from terminal.errors import GateError

    simulation = Simulation(cards=10, gates=4, seed=11)
    fake_engine.add_gate("G0000", simulation.gate_keys["G0000"])  # the other gates are unknown: 401
    # The unknown gate is refused at its first request: the deny list fetch at start.
    with pytest.raises(GateError, match="deny list: engine refused: 401"):
        await send_taps((item.tap for item in simulation.taps(40)), fake_engine.url,
                        simulation.gate_keys, tmp_path, concurrency=4)
    # Every other tap's task was cancelled and awaited, not left to fail unobserved.
    left = [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "send_taps.<locals>.one"]
    assert len(left) == 0
    gc.collect()  # a failed task nobody looked at is reported when it is collected
    assert "exception was never retrieved" not in caplog.text


async def test_send_taps_fetches_each_gates_deny_list_and_uses_it_offline(fake_engine, tmp_path):
    simulation = Simulation(cards=10, gates=4, bad_share=0.3, seed=11)
    for gate_id, key in simulation.gate_keys.items():
        fake_engine.add_gate(gate_id, key)
    fake_engine.deny_list = simulation.deny_list(version=3)
    items = list(simulation.taps(80))
    await send_taps((item.tap for item in items[:40]), fake_engine.url, simulation.gate_keys,
                    tmp_path, concurrency=8)
    fake_engine.status_override = 503  # the engine goes down: gates decide with their copy
    outcomes = await send_taps((item.tap for item in items[40:]), fake_engine.url,
                               simulation.gate_keys, tmp_path, concurrency=8)
    denied = sum(item.fault is Fault.deny_listed for item in items[40:])
    assert denied and outcomes == collections.Counter(
        {"approved/offline": 40 - denied, "declined/offline_deny_list": denied})


def _trips(simulation, count):
    """(entry tap, exit tap) of every completed ride among the next ``count`` taps."""
    entries, trips = {}, []
    for tap, _ in simulation.taps(count):
        if tap.direction == "entry":
            entries[tap.pan] = tap
        elif tap.direction == "exit":
            trips.append((entries.pop(tap.pan), tap))
    return trips


def _within_trip_bounds(entry, exit_, distance_m):
    ride_s = distance_m / TRAIN_SPEED_M_PER_S
    took_s = (exit_.local_time - entry.local_time).total_seconds()
    # local_time is kept to the millisecond, so allow one on each side.
    return ACCESS_S_MIN + ride_s - 0.001 <= took_s <= ACCESS_S_MAX + ride_s + 0.001


def test_rides_take_minutes_by_distance_between_synthetic_stations():
    simulation = Simulation(cards=30, gates=20, seed=8)
    trips = _trips(simulation, 400)
    assert len(trips) > 100
    for entry, exit_ in trips:
        distance_m = abs(int(entry.station[1:]) - int(exit_.station[1:])) * STATION_SPACING_M
        assert _within_trip_bounds(entry, exit_, distance_m), (entry.station, exit_.station)
        assert (exit_.local_time - entry.local_time).total_seconds() >= 60
    longest = max(trips, key=lambda trip: trip[1].local_time - trip[0].local_time)
    assert (longest[1].local_time - longest[0].local_time).total_seconds() > 20 * 60


def test_rides_on_a_known_network_take_its_track_distance():
    import engine.fares
    from engine.fares.stations import StationNetwork

    network = StationNetwork.load(Path(engine.fares.__file__).parent / "data" / "chengdu_line1.csv")
    simulation = Simulation(cards=20, gates=12, seed=4, network=network)
    trips = _trips(simulation, 200)
    assert {gate.station for gate in simulation.gates} <= set(network.stations)
    assert len(trips) > 50
    for entry, exit_ in trips:
        assert _within_trip_bounds(entry, exit_, network.distance_m(entry.station, exit_.station))
