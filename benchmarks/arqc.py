"""ARQC verifications per second on one core.

    python -m benchmarks.arqc [--quick]

Measures, in one run and on the same workload (scheme ``emv-csk-3des``: Option A, EMV
common session key, MAC algorithm 3 with padding 2, 40 bytes of transaction data):

- ``soft`` cold: every request a card the cache has not seen (ICC master key derived);
- ``soft`` warm: cards already in the derived-key cache (the tap path's steady state);
- ``pkcs11`` on SoftHSM2, warm, through the key service;
- SoftHSM2's raw mechanism rate: the same token calls (2 derives, 2 CBC encryptions,
  2 destroys per ARQC) made directly with python-pkcs11, no service around them;
- ``pyemv`` doing the same work (derive ICC MK, session key, AC; compare): the baseline.

Rates are per CPU-second of this process (``time.process_time``, which counts the token's
worker thread too), pinned to one core, so other load on a shared machine slows the run
but skews the figures little; soft warm and pyemv run in alternating rounds and each
reports its best round. Latencies are wall-clock.

Targets: soft warm >= 3x pyemv; pkcs11 >= raw / 2. The last line is
``soft_per_s=... pyemv_per_s=... pkcs11_per_s=... ratio=...`` (ratio = soft warm / pyemv),
with the other figures after it.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from hsm.scheme import SCHEMES, application_cryptogram, icc_master_key, session_key
from hsm.service import ArqcRequest, ArqcResult
from hsm.soft import SoftKeyService
from hsm.softhsm import create_token, softhsm_available

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
SCHEME_NAME = "emv-csk-3des"
BATCH_SIZE = 256
ROUNDS = 5
ROUNDS_QUICK = 3


def _requests(label: str, cards: int, count: int, first_pan: int = 0) -> list[ArqcRequest]:
    """``count`` valid requests cycling over ``cards`` cards, each with its own ATC."""
    scheme = SCHEMES[SCHEME_NAME]
    master_keys = {}
    requests = []
    for index in range(count):
        pan = f"62170000{first_pan + index % cards:08d}"
        atc = (index // cards + 1).to_bytes(2, "big")
        data = bytes(32) + index.to_bytes(8, "big")
        if pan not in master_keys:
            master_keys[pan] = icc_master_key(scheme, IMK, pan, "01")
        arqc = application_cryptogram(scheme, session_key(scheme, master_keys[pan], atc), data)
        requests.append(ArqcRequest(label, pan, "01", atc, b"", data, arqc))
    return requests


async def _run_batches(service, requests: list[ArqcRequest]) -> tuple[float, list[float]]:
    """(verifications per CPU-second, per-batch wall-clock latencies in ms)."""
    latencies_ms = []
    started = time.process_time()
    for start in range(0, len(requests), BATCH_SIZE):
        batch_started = time.perf_counter()
        results = await service.verify_arqc_batch(requests[start : start + BATCH_SIZE])
        latencies_ms.append((time.perf_counter() - batch_started) * 1000)
        assert all(result == ArqcResult.verified for result in results), "a valid ARQC failed"
    return len(requests) / (time.process_time() - started), latencies_ms


async def _single_latencies_us(service, requests: list[ArqcRequest]) -> list[float]:
    latencies = []
    for request in requests:
        started = time.perf_counter()
        await service.verify_arqc(request)
        latencies.append((time.perf_counter() - started) * 1e6)
    return latencies


def _percentiles(values: list[float]) -> str:
    quantiles = statistics.quantiles(values, n=100)
    return f"p50={quantiles[49]:.1f} p99={quantiles[98]:.1f}"


def _pyemv_rate(requests: list[ArqcRequest]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyemv import ac, kd

        started = time.process_time()
        for request in requests:
            master_key = kd.derive_icc_mk_a(IMK, request.pan, request.psn)
            key = kd.derive_common_sk(master_key, request.atc + bytes(6))
            arqc = ac.generate_ac(key, request.transaction_data, ac.PaddingType.EMV)
            assert hmac.compare_digest(arqc, request.arqc)
        return len(requests) / (time.process_time() - started)


async def _soft_and_pyemv(folder: Path, quick: bool) -> dict[str, float]:
    SoftKeyService.init(folder)
    service = SoftKeyService.open(folder)
    await service.import_key("imk", "imk-ac", "3des", IMK, SCHEME_NAME)
    count = 10_000 if quick else 50_000
    cold = _requests("imk", count, count, first_pan=50_000_000)
    cold_rate, _ = await _run_batches(service, cold)
    warm = _requests("imk", 1000, count)
    await _run_batches(service, warm[:1000])  # fill the cache
    warm_rates, pyemv_rates, batch_ms = [], [], []
    for _ in range(ROUNDS_QUICK if quick else ROUNDS):
        rate, latencies_ms = await _run_batches(service, warm)
        warm_rates.append(rate)
        batch_ms += latencies_ms
        pyemv_rates.append(_pyemv_rate(warm[: count // 2]))
    single_us = await _single_latencies_us(service, warm[:2000])
    await service.close()
    print(f"soft cold:  {cold_rate:10.0f} verifications/s")
    print(
        f"soft warm:  {max(warm_rates):10.0f} verifications/s"
        f"  batch of {BATCH_SIZE} ms {_percentiles(batch_ms)}"
        f"  single call us {_percentiles(single_us)}"
    )
    print(f"pyemv:      {max(pyemv_rates):10.0f} verifications/s (baseline)")
    return {
        "soft_cold_per_s": cold_rate,
        "soft_per_s": max(warm_rates),
        "pyemv_per_s": max(pyemv_rates),
    }


async def _pkcs11(folder: Path, quick: bool) -> dict[str, float]:
    from engine.config import Config
    from hsm.service import open_key_service

    if not softhsm_available():
        print("pkcs11:     skipped (softhsm2 not installed)")
        return {"pkcs11_per_s": 0.0, "raw_per_s": 0.0}
    environ = create_token(folder / "softhsm", "bench", "bench-4711")
    service = open_key_service(Config(home=folder, database_url=None), environ=environ)
    await service.import_key("imk", "imk-ac", "3des", IMK, SCHEME_NAME)
    count = 4000 if quick else 20_000
    requests = _requests("imk", 500, count)
    await _run_batches(service, requests[:500])  # derive and cache the card keys
    rate, batch_ms = await _run_batches(service, requests)
    raw = await service._call(_raw_rate, service, requests)
    await service.close()
    print(
        f"pkcs11:     {rate:10.0f} verifications/s"
        f"  batch of {BATCH_SIZE} ms {_percentiles(batch_ms)}"
    )
    print(f"softhsm raw:{raw:10.0f} mechanism sequences/s (same calls, no service)")
    return {"pkcs11_per_s": rate, "raw_per_s": raw}


def _raw_rate(service, requests: list[ArqcRequest]) -> float:
    """The token calls of one warm verification, made directly (on the token's thread)."""
    from pkcs11 import Mechanism

    from hsm.mac import pad
    from hsm.scheme import session_key_input

    scheme = SCHEMES[SCHEME_NAME]
    imk = service._imk("imk")
    cards = {r.pan: service._card(imk, r.pan, r.psn).master_key for r in requests}
    started = time.process_time()
    for request in requests:
        data = session_key_input(scheme, request.atc)
        key = service._derive(cards[request.pan], "3DES", data, encrypt=True)
        left = service._derive(cards[request.pan], "3DES", data[:8] * 2, encrypt=True)
        blocks = pad(request.transaction_data, 8, 2)
        chain = left.encrypt(blocks[:-8], mechanism=Mechanism.DES3_CBC, mechanism_param=bytes(8))[
            -8:
        ]
        key.encrypt(blocks[-8:], mechanism=Mechanism.DES3_CBC, mechanism_param=chain)
        key.destroy()
        left.destroy()
    return len(requests) / (time.process_time() - started)


async def main_async(quick: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="onecard-bench-") as folder:
        soft = await _soft_and_pyemv(Path(folder) / "soft", quick)
        token = await _pkcs11(Path(folder), quick)
    pyemv_rate = soft["pyemv_per_s"]
    ratio = soft["soft_per_s"] / pyemv_rate
    token_ratio = token["pkcs11_per_s"] / token["raw_per_s"] if token["raw_per_s"] else 0.0
    print(
        f"soft warm / pyemv = {ratio:.2f} (target >= 3); "
        f"pkcs11 / raw = {token_ratio:.2f} (target >= 0.5)"
    )
    return (
        f"soft_per_s={soft['soft_per_s']:.0f} pyemv_per_s={pyemv_rate:.0f} "
        f"pkcs11_per_s={token['pkcs11_per_s']:.0f} ratio={ratio:.2f} "
        f"soft_cold_per_s={soft['soft_cold_per_s']:.0f} softhsm_raw_per_s={token['raw_per_s']:.0f} "
        f"pkcs11_over_raw={token_ratio:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.arqc", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller run (< 1 minute)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    print(asyncio.run(main_async(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
