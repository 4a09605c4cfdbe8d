"""Taps per second the terminal side produces, in process and through the real PC/SC stack.

    python -m benchmarks.terminal_taps [--quick]

Measures, in one run:

- ``kernel``: the whole tap in process: simulator choice, kernel flow (PPSE, SELECT, GPO,
  2 READ RECORDs, GENERATE AC) against the card emulator, TLV both ways, Tap built and
  validated; scheme ``pboc-3des``;
- ``crypto``: the baseline, only the card's cryptography of the same taps (session key and
  AC through :mod:`hsm.scheme`): the kernel's overhead is the gap between the two;
- ``pcsc``: full taps through pyscard -> pcscd -> vpcd -> emulator, with ``TCP_QUICKACK``
  re-armed after every read (as :class:`terminal.vpcd.VpcdLink` does) and, as the second
  baseline, without it (delayed ACKs: ~40 ms per APDU). Skipped when pcscd or
  vsmartcard-vpcd is missing.

The last line is ``kernel_taps_per_s=... crypto_per_s=... pcsc_tap_p50_ms=...
pcsc_tap_p50_ms_no_quickack=... pcsc_apdu_p50_ms=...``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time

from hsm import scheme as schemes
from terminal.card import Card
from terminal.errors import ReaderError
from terminal.reader import PcscReader, read_tap
from terminal.simulator import Simulation
from terminal.vpcd import VpcdLink, start_pcscd

SCHEME_NAME = "pboc-3des"
APDUS_PER_TAP = 6
LOCAL = datetime.timezone(datetime.timedelta(hours=8))


def _percentiles(values_ms: list[float]) -> tuple[float, float]:
    quantiles = statistics.quantiles(values_ms, n=100)
    return quantiles[49], quantiles[98]


def _kernel(count: int) -> tuple[float, list[float]]:
    simulation = Simulation(cards=1000, gates=40, seed=1, schemes=[SCHEME_NAME])
    taps = simulation.taps(count)
    latencies_ms = []
    started = time.perf_counter()
    for _ in range(count):
        tap_started = time.perf_counter()
        next(taps)
        latencies_ms.append((time.perf_counter() - tap_started) * 1000)
    return count / (time.perf_counter() - started), latencies_ms


def _crypto(count: int) -> float:
    scheme = schemes.SCHEMES[SCHEME_NAME]
    keys = [schemes.icc_master_key(scheme, bytes(16), f"62170000{index:08d}", "01") for index in range(1000)]
    data = bytes(37)
    started = time.perf_counter()
    for index in range(count):
        session = schemes.session_key(scheme, keys[index % 1000], (index % 65535 + 1).to_bytes(2, "big"))
        schemes.application_cryptogram(scheme, session, data)
    return count / (time.perf_counter() - started)


def _pcsc(count: int, quickack: bool) -> list[float]:
    card = Card.issue(SCHEME_NAME, bytes(16), "6217000010012345677", "01")
    latencies_ms = []
    with VpcdLink(card, quickack=quickack), PcscReader("Virtual PCD 00 00") as reader:
        for number in range(count):
            started = time.perf_counter()
            read_tap(reader.transmit, amount=200, tap_id=f"b{number}", gate_id="G1", station="S1",
                     direction="entry", local_time=datetime.datetime.now(LOCAL))
            latencies_ms.append((time.perf_counter() - started) * 1000)
    return latencies_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer taps (< 1 min)")
    quick = parser.parse_args().quick
    count = 5_000 if quick else 50_000

    kernel_rate, kernel_ms = _kernel(count)
    p50, p99 = _percentiles(kernel_ms)
    print(f"kernel:  {kernel_rate:9.0f} taps/s  per tap ms p50={p50:.3f} p99={p99:.3f}")
    crypto_rate = _crypto(count)
    print(f"crypto:  {crypto_rate:9.0f} cryptograms/s (baseline: the card's cryptography alone)")
    figures = {"kernel_taps_per_s": f"{kernel_rate:.0f}", "crypto_per_s": f"{crypto_rate:.0f}",
               "kernel_tap_p99_ms": f"{p99:.3f}"}
    try:
        process = start_pcscd()
    except ReaderError as error:
        print(f"pcsc:    skipped ({error})")
        figures["pcsc"] = "skipped"
    else:
        try:
            fast = _pcsc(200 if quick else 2000, quickack=True)
            slow = _pcsc(10 if quick else 50, quickack=False)
        finally:
            if process is not None:
                process.terminate()
                process.wait()
        fast_p50, fast_p99 = _percentiles(fast)
        slow_p50, slow_p99 = _percentiles(slow)
        print(f"pcsc:    per tap ms p50={fast_p50:.2f} p99={fast_p99:.2f} "
              f"({APDUS_PER_TAP} APDUs: {fast_p50 / APDUS_PER_TAP:.3f} ms per APDU)")
        print(f"pcsc without TCP_QUICKACK (baseline): per tap ms p50={slow_p50:.2f} p99={slow_p99:.2f}")
        figures |= {"pcsc_tap_p50_ms": f"{fast_p50:.2f}", "pcsc_tap_p99_ms": f"{fast_p99:.2f}",
                    "pcsc_tap_p50_ms_no_quickack": f"{slow_p50:.2f}",
                    "pcsc_apdu_p50_ms": f"{fast_p50 / APDUS_PER_TAP:.3f}"}
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
