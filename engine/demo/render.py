"""The demo summary as text for people (``--json`` prints the summary itself)."""

from __future__ import annotations


def yuan(amount_minor: int) -> str:
    """Fen as signed yuan text.

    >>> yuan(-12345), yuan(5)
    ('-123.45', '0.05')
    """
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}{abs(amount_minor) // 100}.{abs(amount_minor) % 100:02d}"


def render(summary: dict) -> str:
    """Every section of the summary as aligned text lines."""
    taps, perf = summary["taps"], summary["performance"]
    people = summary["cardholders"]
    lines = [f"database {summary['database']}",
             f"cardholders: {people['count']} ({_pairs(people['by_bank'])}; {_pairs(people['by_status'])}; "
             f"{_pairs(people['by_category'])})",
             "key ceremony: " + "; ".join(f"{k['label']} ({k['scheme']}) {k['kcv'][-1]}" for k in summary["key_ceremony"]),
             f"taps: {taps['approved'] + taps['declined']} recorded, {taps['approved']} approved, "
             f"{taps['declined']} declined",
             *(f"  {name:<18} {count:>8}" for name, count in taps["by_reason"].items()),
             f"  simulator faults sent: {_pairs(summary['simulator_faults'])}",
             f"  gate view: {_pairs(summary['gate_outcomes'])}; "
             f"{summary['offline_taps_uploaded']} taps approved offline by gates and uploaded after the day",
             f"fares: {yuan(taps['fare_total_minor'])} CNY; daily cap reached on {taps['capped_taps']} taps "
             f"by {taps['capped_cards']} cards; missing exits charged {taps['missing_exits']}",
             *(f"  {name:<18} {item['taps']:>8} taps {yuan(item['fare_minor']):>12} CNY"
               for name, item in (taps["fares_by_network"] | taps["fares_by_category"]).items()),
             "batches: " + (_batches(summary["batches"]) or "none")]
    cycle = summary["cycle"]
    lines += [f"settlement cycle {cycle['cycle_id']}: {cycle['state']}, {cycle['transfer_count']} transfers, "
              f"{cycle['unattributed_count']} unattributed; net positions (sum {yuan(summary['positions_sum_minor'])}):",
              *(f"  {bank:<6} net {yuan(p['net_minor']):>12} CNY  debit {yuan(p['debit_minor']):>12}  "
                f"credit {yuan(p['credit_minor']):>12}  instruction {summary['instruction_status'].get(bank, '-')}"
                for bank, p in summary["positions"].items()),
              "reconciliation: " + "; ".join(
                  f"{bank} {r['matched']} matched, {r['mismatched']} mismatched, "
                  f"{r['unmatched_engine']} missing on statement, {r['unmatched_statement']} unknown to engine"
                  for bank, r in summary["reconciliation"].items()),
              f"ledger audit: {'ok' if summary['audit_ok'] else 'FAILED'}",
              f"throughput: {perf['taps_per_s']} taps/s over HTTP ({perf['taps_sent']} taps in {perf['elapsed_s']} s); "
              f"latency p50 {perf['p50_ms']} ms, p99 {perf['p99_ms']} ms, p99.9 {perf['p99_9_ms']} ms",
              "step timings (s): " + _pairs(summary["timings_s"]),
              f"artefacts: {len(summary['artefacts'])} files"]
    return "\n".join(lines)


def _pairs(mapping: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in mapping.items())


def _batches(batches: dict) -> str:
    return "; ".join(f"{name}: {item['state']}, {_pairs(item['lines_by_result'])}, paid {item['paid_lines']} lines "
                     f"{yuan(item['paid_minor'])} CNY in {item['pacs008_messages']} pacs.008"
                     for name, item in batches.items())
