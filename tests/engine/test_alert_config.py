"""Alert thresholds of ``onecard serve``: the ``--alert-config`` file's ``[alerts]`` table,
overridden per field by ``ONECARD_ALERT_<FIELD>``; a bad value stops the command with an
error naming the field; the running engine raises alerts at the configured thresholds."""

from __future__ import annotations

import pytest

from engine import cli
from engine.alerts import AlertError, AlertThresholds


def test_file_then_environment(tmp_path):
    path = tmp_path / "alerts.toml"
    path.write_text("[alerts]\nburst_taps_max = 9\natc_jump_max = 20\n", encoding="utf-8")
    thresholds = AlertThresholds.configured(path, {"ONECARD_ALERT_ATC_JUMP_MAX": " 30 ", "PATH": "/bin"})
    assert thresholds == AlertThresholds(burst_taps_max=9, atc_jump_max=30)
    assert AlertThresholds.configured(None, {}) == AlertThresholds()


@pytest.mark.parametrize(("file_text", "environ", "message"), [
    ("[alerts]\nburst_taps_max = 0\n", {}, "alerts.toml [alerts]: alert thresholds burst_taps_max: must be 1 to 1000000000"),
    ("[alerts]\natc_jump_max = 99999999999999999999999\n", {}, "alerts.toml [alerts]: "),
    ("[alert]\nburst_taps_max = 3\n", {}, "alerts.toml: no [alerts] table (tables found: alert)"),
    ("", {}, "alerts.toml: no [alerts] table (tables found: none)"),
    ("[alerts]\nburst_window_s = \"60\"\n", {}, "alerts.toml [alerts]: Expected `int`, got `str` - at `$.burst_window_s`"),
    ("[alerts]\nburst_taps = 3\n", {}, "unknown field `burst_taps`"),
    ("[alerts\n", {}, "alerts.toml: Expected ']'"),
    ("[alerts]\n", {"ONECARD_ALERT_TRAVEL_SPEED_KMH_MAX": "fast"}, "ONECARD_ALERT_TRAVEL_SPEED_KMH_MAX: 'fast' is not a whole number"),
    ("[alerts]\n", {"ONECARD_ALERT_BURST_TAPS_MAX": "６"}, "ONECARD_ALERT_BURST_TAPS_MAX: '６' is not a whole number"),
    ("[alerts]\n", {"ONECARD_ALERT_BURST_TAPS_MAX": "64"},
     "ONECARD_ALERT_BURST_TAPS_MAX: alert thresholds burst_taps_max: must be below 64"),
    ("[alerts]\n", {"ONECARD_ALERT_BURST": "3"}, "ONECARD_ALERT_BURST: unknown alert threshold (known: ONECARD_ALERT_ATC_JUMP_MAX"),
])
def test_bad_values_name_the_field(tmp_path, file_text, environ, message):
    path = tmp_path / "alerts.toml"
    path.write_text(file_text, encoding="utf-8")
    with pytest.raises(AlertError) as raised:
        AlertThresholds.configured(path, environ)
    assert message in str(raised.value)


def test_serve_refuses_a_bad_threshold_before_starting(tmp_path, monkeypatch, capsys):
    path = tmp_path / "alerts.toml"
    path.write_text("[alerts]\nburst_window_s = -5\n", encoding="utf-8")
    assert cli.main(["serve", "--port", "0", "--alert-config", str(path)]) == 1
    assert capsys.readouterr().err == (
        "onecard: alerts.toml [alerts]: alert thresholds burst_window_s: must be 1 to 1000000000\n")
    monkeypatch.setenv("ONECARD_ALERT_ATC_JUMP_MAX", "1e3")
    assert cli.main(["serve", "--port", "0"]) == 1
    assert capsys.readouterr().err == "onecard: ONECARD_ALERT_ATC_JUMP_MAX: '1e3' is not a whole number\n"
    monkeypatch.delenv("ONECARD_ALERT_ATC_JUMP_MAX")
    assert cli.main(["serve", "--port", "0", "--alert-config", str(tmp_path / "none.toml")]) == 1
    assert "none.toml: No such file or directory" in capsys.readouterr().err
    path.write_bytes("[alerts]\n# 阈值\n".encode("gbk"))
    assert cli.main(["serve", "--port", "0", "--alert-config", str(path)]) == 1
    assert capsys.readouterr().err == "onecard: alerts.toml: not UTF-8 text\n"
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--port", "0", "--clock-skew-ms", "５"])
    assert exited.value.code == 2
    assert "argument --clock-skew-ms: must be an integer from 0 to 2147483648" in capsys.readouterr().err


@pytest.mark.parametrize("api", [{"alert_thresholds": AlertThresholds(burst_taps_max=2)}], indirect=True)
async def test_engine_raises_alerts_at_the_configured_threshold(api, rider):
    for tap_id, direction in (("b-1", "entry"), ("b-2", "exit"), ("b-3", "entry")):
        await api.tap(rider.tap(tap_id, direction))
    status, body = await api.call("GET", "/v1/alerts", device="admin-1")
    assert status == 200
    assert [(alert["kind"], alert["tap_id"]) for alert in body["alerts"]] == [("tap_burst", "b-3")]
