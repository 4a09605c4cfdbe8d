"""``onecard serve``: two worker processes on one port, migrations at startup, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[2]


def test_serve_runs_workers_on_one_port_and_stops_on_sigterm(db_url, key_service, tmp_path):
    environment = os.environ | {"ONECARD_DATABASE_URL": db_url, "ONECARD_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--workers", "2"],
        cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), server.stderr.read()
        assert line.rstrip().endswith("(2 workers)")
        base = line.split()[2]
        for _ in range(4):  # connections spread over both workers; each must answer
            with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
                assert msgspec.json.decode(response.read()) == {"status": "ok", "database": True}
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            assert b"onecard_tap_latency_seconds" in response.read()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
