"""A SoftHSM2 token of its own for the hsm tests (in a temporary folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "onecard-test"
TOKEN_PIN = "4711-test"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory) -> dict[str, str]:
    """Environment of the pkcs11 backend on a fresh SoftHSM2 token (skips without softhsm2).

    SoftHSM reads ``SOFTHSM2_CONF`` when the library first initialises in this process,
    so the variable is set for the whole session and the token is shared by the tests
    (each uses its own key labels).
    """
    if shutil.which("softhsm2-util") is None or not Path(SOFTHSM_MODULE).exists():
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    config = folder / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(config)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", "so-" + TOKEN_PIN, "--pin", TOKEN_PIN],
        check=True, capture_output=True, env=os.environ,
    )
    return {
        "ONECARD_HSM_BACKEND": "pkcs11",
        "ONECARD_PKCS11_MODULE": SOFTHSM_MODULE,
        "ONECARD_PKCS11_TOKEN": TOKEN_LABEL,
        "ONECARD_PKCS11_PIN": TOKEN_PIN,
    }
