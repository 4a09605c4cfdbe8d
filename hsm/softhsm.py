"""A throwaway SoftHSM2 token in a folder, for tests and benchmarks of the pkcs11 backend.

SoftHSM reads ``SOFTHSM2_CONF`` when its library first initialises in a process, so this
sets the variable for the whole process: create one such token per process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def softhsm_available() -> bool:
    """Whether ``softhsm2-util`` and the SoftHSM2 PKCS#11 library are installed."""
    return shutil.which("softhsm2-util") is not None and Path(SOFTHSM_MODULE).exists()


def create_token(folder: Path, label: str, pin: str) -> dict[str, str]:
    """Initialise a token labelled ``label`` under ``folder``; return the environment of
    :func:`hsm.service.open_key_service` for it.

    Raises
    ------
    subprocess.CalledProcessError
        ``softhsm2-util`` failed.
    """
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    config = folder / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(config)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            f"so-{pin}",
            "--pin",
            pin,
        ],
        check=True,
        capture_output=True,
    )
    return {
        "ONECARD_HSM_BACKEND": "pkcs11",
        "ONECARD_PKCS11_MODULE": SOFTHSM_MODULE,
        "ONECARD_PKCS11_TOKEN": label,
        "ONECARD_PKCS11_PIN": pin,
    }
