"""``onecard reader tap`` and ``onecard simulate gates`` end to end (real pcscd, signed HTTP)."""

import asyncio
import json
import os
import sys

from engine.cli import main
from terminal.card import Card
from terminal.simulator import Simulation
from terminal.vpcd import VpcdLink

from conftest import KEY


async def _cli(*args, env_extra):
    env = dict(os.environ) | env_extra
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_reader_tap_sends_a_signed_tap(pcscd_virtual_reader, fake_engine, tmp_path):
    fake_engine.add_gate("G7", KEY)
    card = Card.issue("pboc-sm4", bytes(16), "6217000010012345677", "01", atc=4)
    with VpcdLink(card):
        code, out, err = await _cli(
            "reader", "tap", "--engine", fake_engine.url, "--reader", pcscd_virtual_reader,
            "--gate-id", "G7", "--station", "S9", "--direction", "entry", "--amount", "300", "--json",
            env_extra={"ONECARD_HOME": str(tmp_path), "ONECARD_GATE_KEY": KEY.hex()})
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["decision"]["decision"] == "approved" and result["queued"] == 0
    assert result["deny_list_version"] == 7  # fetched after the online tap, kept on disk
    assert (result["tap"]["atc"], result["tap"]["amount"], result["tap"]["station"]) == (5, 300, "S9")
    assert list(fake_engine.taps) == [result["tap"]["tap_id"]]


async def test_reader_tap_queues_while_the_engine_is_down_and_uploads_when_back(
        pcscd_virtual_reader, fake_engine, tmp_path):
    fake_engine.add_gate("G8", KEY)
    env = {"ONECARD_HOME": str(tmp_path), "ONECARD_GATE_KEY": KEY.hex()}
    arguments = ["reader", "tap", "--engine", fake_engine.url, "--reader", pcscd_virtual_reader,
                 "--gate-id", "G8"]
    card = Card.issue("emv-csk-3des", bytes(16), "6217000010012345677", "01")
    fake_engine.status_override = 503
    with VpcdLink(card):
        code, out, err = await _cli(*arguments, env_extra=env)
    assert (code, err) == (0, "") and out.endswith(" approved (offline); 1 tap(s) queued for upload\n")
    assert fake_engine.taps == {}
    fake_engine.status_override = None
    with VpcdLink(card):
        code, out, err = await _cli(*arguments, env_extra=env)
    assert (code, err) == (0, "") and out.endswith(" approved\n")
    assert [json.loads(body)["atc"] for body in fake_engine.taps.values()] == [2, 1]


async def test_reader_tap_without_key_is_a_usage_error(fake_engine, tmp_path):
    code, out, err = await _cli("reader", "tap", "--engine", fake_engine.url,
                                env_extra={"ONECARD_HOME": str(tmp_path), "ONECARD_GATE_KEY": ""})
    assert (code, out) == (2, "")
    assert err == "onecard: $ONECARD_GATE_KEY: a gate signing key of at least 16 bytes is required with --engine\n"


async def test_simulate_gates_sends_to_the_engine(fake_engine, tmp_path):
    simulation = Simulation(cards=6, gates=4, bad_share=0.4, seed=21)
    for gate_id, key in simulation.gate_keys.items():
        fake_engine.add_gate(gate_id, key)
    fake_engine.deny_list = simulation.deny_list()
    code, out, err = await _cli("simulate", "gates", "--cards", "6", "--gates", "4", "--taps", "30",
                                "--bad-share", "0.4", "--seed", "21", "--engine", fake_engine.url, "--json",
                                env_extra={"ONECARD_HOME": str(tmp_path)})
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["taps"] == 30 == sum(summary["outcomes"].values()) == sum(summary["faults"].values())
    assert summary["outcomes"].get("declined/card_lost", 0) == summary["faults"].get("deny_listed", 0)
    assert len(fake_engine.taps) == 30


def test_simulate_gates_prints_taps(capsys):
    assert main(["simulate", "gates", "--cards", "3", "--gates", "4", "--taps", "2", "--seed", "7"]) == 0
    assert capsys.readouterr().out == (
        "G0002:7:1 entry S001 atc=1 none\n"
        "G0000:7:2 entry S000 atc=1 none\n")


def test_simulate_gates_bad_arguments(capsys):
    assert main(["simulate", "gates", "--cards", "1", "--bad-share", "0.5"]) == 2
    assert "cards: at least 2" in capsys.readouterr().err
