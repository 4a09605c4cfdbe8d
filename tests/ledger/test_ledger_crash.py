"""A ledger writer killed with SIGKILL mid-load loses nothing it acknowledged."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from ledger.audit import audit
from ledger.service import Ledger

WRITER = Path(__file__).with_name("ledger_crash_writer.py")
REPO = Path(__file__).resolve().parents[2]
ACKS_BEFORE_KILL = 2000


async def test_sigkill_mid_load_keeps_every_acknowledged_transfer(pool, db_url):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, str(WRITER), db_url], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    acknowledged: list[int] = []
    try:
        assert writer.stdout.readline().strip() == "ready"
        while len(acknowledged) < ACKS_BEFORE_KILL:
            line = writer.stdout.readline()
            assert line, "writer died before the kill"
            acknowledged.append(int(line.split()[1]))
        writer.send_signal(signal.SIGKILL)
        # Lines already written before the kill are acknowledgements too.
        acknowledged += [int(line.split()[1]) for line in writer.stdout.read().splitlines() if line.startswith("ack ")]
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    ledger = Ledger(pool)
    found = set()
    for start in range(0, len(acknowledged), 8000):
        chunk = acknowledged[start:start + 8000]
        found |= {t.id for t in await ledger.lookup_transfers(chunk)}
    assert found == set(acknowledged)
    async with pool.acquire() as connection:
        report = await audit(connection)
    assert report.ok, report
