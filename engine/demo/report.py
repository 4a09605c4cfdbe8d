"""Step 7: the summary and the artefacts in ``--out``.

Artefacts: every ISO 20022 message exchanged (``iso20022/``), CSV reports (taps by
reason, fares by rider category, settlement positions, reconciliation per bank, batch
results), ``taps_per_minute.png`` (taps per minute of the simulated day and their mean
latency) and ``net_positions.png`` (net position by bank), and ``summary.json``.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from pathlib import Path

import asyncpg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from adapters.reconcile import write_csv  # noqa: E402
from engine.demo.clearing import Clearing  # noqa: E402
from engine.demo.transit import TransitDay  # noqa: E402
from engine.settlement.report import render_csv  # noqa: E402
from engine.taps.reasons import Reason  # noqa: E402

PERCENTILES = (0.50, 0.99, 0.999)


async def tap_figures(connection: asyncpg.Connection) -> dict:
    """Taps by decision and reason, fares by rider category, caps reached (from the
    engine's tap records)."""
    by_reason = {Reason(row["reason"]).name: row["count"] for row in await connection.fetch(
        "SELECT reason, count(*) FROM transit_taps GROUP BY reason ORDER BY reason")}
    fares = {row["rider_category"]: {"taps": row["taps"], "fare_minor": int(row["fare_minor"])}
             for row in await connection.fetch(
                 "SELECT rider_category, count(*) AS taps, sum(fare_minor - refund_minor) AS fare_minor"
                 " FROM transit_taps"
                 " WHERE reason = 0 GROUP BY rider_category ORDER BY rider_category")}
    capped = await connection.fetchrow(
        "SELECT count(*) AS taps, count(DISTINCT card_token) AS cards FROM transit_taps"
        " WHERE reason = 0 AND day_cap_minor > 0 AND day_total_minor >= day_cap_minor")
    missing = await connection.fetchval("SELECT count(*) FROM transit_taps WHERE tap_id LIKE '%:missing-exit'")
    networks = {row["network"]: {"taps": row["taps"], "fare_minor": int(row["fare_minor"])}
                for row in await connection.fetch(
                    "SELECT CASE WHEN direction = 'single' THEN 'bus' ELSE 'metro' END AS network,"
                    " count(*) AS taps, sum(fare_minor - refund_minor) AS fare_minor FROM transit_taps"
                    " WHERE reason = 0"
                    " GROUP BY 1 ORDER BY 1")}
    return {"by_reason": by_reason,
            "approved": by_reason.get("approved", 0),
            "declined": sum(count for name, count in by_reason.items() if name != "approved"),
            "fares_by_category": fares, "fares_by_network": networks,
            "fare_total_minor": sum(item["fare_minor"] for item in fares.values()),
            "capped_taps": capped["taps"], "capped_cards": capped["cards"], "missing_exits": missing}


def latency_figures(day: TransitDay) -> dict:
    """Throughput (taps/s over HTTP) and latency percentiles in ms."""
    ordered = sorted(day.latencies_s)
    figures = {"taps_sent": len(ordered), "elapsed_s": round(day.elapsed_s, 2),
               "taps_per_s": round(len(ordered) / day.elapsed_s, 1) if day.elapsed_s else 0.0}
    for fraction in PERCENTILES:
        key = f"p{fraction * 100:g}_ms".replace(".", "_")
        figures[key] = round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1) if ordered else 0.0
    return figures


def write_artefacts(out: Path, summary: dict, day: TransitDay, clearing: Clearing,
                    extra_files: dict[str, bytes]) -> list[Path]:
    """Write every artefact under ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, data: bytes) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)

    for stale in (out / "iso20022").glob("*.xml"):  # an earlier run's messages (other MsgIds)
        stale.unlink()
    for name, xml in clearing.messages.items():
        put(f"iso20022/{name}", xml)
    for name, data in extra_files.items():
        put(name, data)
    taps = summary["taps"]
    put("taps_by_reason.csv", _csv(["reason", "taps"], taps["by_reason"].items()))
    put("fares_by_category.csv", _csv(["rider_category", "taps", "fare_minor"],
                                      ((k, v["taps"], v["fare_minor"]) for k, v in taps["fares_by_category"].items())))
    if clearing.cycle is not None:
        put("settlement_positions.csv", render_csv(clearing.cycle, clearing.positions).encode())
    for bank, report in clearing.reconciliations.items():
        stream = io.StringIO()
        write_csv(report, stream)
        put(f"reconciliation_{bank}.csv", stream.getvalue().encode())
    put("taps_per_minute.png", _taps_chart(day))
    put("net_positions.png", _positions_chart(clearing))
    return written


def _csv(header: list[str], rows) -> bytes:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return stream.getvalue().encode()


def _png(figure) -> bytes:
    stream = io.BytesIO()
    figure.savefig(stream, format="png", dpi=100)
    plt.close(figure)
    return stream.getvalue()


def _taps_chart(day: TransitDay) -> bytes:
    """Taps per minute of the simulated day (bars) and mean latency per minute (line)."""
    per_minute = Counter(day.local_minutes)
    latency: dict[int, list[float]] = {}
    for minute, seconds in zip(day.local_minutes, day.latencies_s):
        latency.setdefault(minute, []).append(seconds * 1000)
    minutes = sorted(per_minute)
    figure, taps_axis = plt.subplots(figsize=(10, 4))
    taps_axis.bar([m / 60 + 6 for m in minutes], [per_minute[m] for m in minutes], width=1 / 60, color="tab:blue")
    taps_axis.set_xlabel("local time (h)")
    taps_axis.set_ylabel("taps per minute", color="tab:blue")
    latency_axis = taps_axis.twinx()
    latency_axis.plot([m / 60 + 6 for m in minutes], [statistics.fmean(latency[m]) for m in minutes],
                      color="tab:red", linewidth=0.8)
    latency_axis.set_ylabel("mean latency (ms)", color="tab:red")
    taps_axis.set_title("Transit day: taps per minute and tap latency")
    figure.tight_layout()
    return _png(figure)


def _positions_chart(clearing: Clearing) -> bytes:
    """Net position of every bank in the closed cycle, in yuan."""
    figure, axis = plt.subplots(figsize=(6, 4))
    banks = [p.bank_code for p in clearing.positions]
    nets = [p.net_minor / 100 for p in clearing.positions]
    axis.bar(banks, nets, color=["tab:green" if net >= 0 else "tab:red" for net in nets])
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel("net position (CNY)")
    axis.set_title("Net positions by bank (settlement cycle)")
    figure.tight_layout()
    return _png(figure)
