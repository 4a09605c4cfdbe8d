"""A real PC/SC stack for terminal tests: pcscd with vsmartcard's virtual reader driver.

``pcscd_virtual_reader`` starts ``pcscd --foreground`` for the session unless a pcscd with
the "Virtual PCD" reader already runs, and stops only a pcscd it started itself. Tests
that need it are skipped, with the reason, when the binaries are missing (CI installs
them: see ``.ci/run``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_PREFIX = "Virtual PCD 00 00"
START_WAIT_S = 10.0


def _virtual_reader_names() -> list[str]:
    from terminal.errors import ReaderError
    from terminal.reader import pcsc_readers

    try:
        return [str(reader) for reader in pcsc_readers() if str(reader).startswith(READER_PREFIX)]
    except ReaderError:
        return []


@pytest.fixture(scope="session")
def pcscd_virtual_reader():
    """The PC/SC name of the virtual reader, with pcscd running for the whole session."""
    pytest.importorskip("smartcard", reason="pyscard is not installed (pip install pyscard)")
    pcscd = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
    if pcscd is None or not VPCD_DRIVER.exists():
        pytest.skip("pcscd or vsmartcard-vpcd not installed (apt-get install pcscd vsmartcard-vpcd)")
    names = _virtual_reader_names()
    process = None
    if not names:
        process = subprocess.Popen([pcscd, "--foreground"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_WAIT_S
        while not names and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
            names = _virtual_reader_names()
        if not names:
            process.terminate()
            process.wait()
            pytest.fail(f"pcscd did not show the reader {READER_PREFIX!r} within {START_WAIT_S} s")
    yield names[0]
    if process is not None:
        process.terminate()
        process.wait(timeout=10)
