"""Where the engine finds its reference data (BIN table, administrative divisions, XSDs).

The data is not part of the package: it lives in a shared folder beside the checkout
(``<repo>/../shared/data``) and an installed engine is pointed at it with
``ONECARD_REFERENCE_DATA``. It is read at run time, never copied into the repository.

| variable | default | meaning |
| --- | --- | --- |
| ``ONECARD_REFERENCE_DATA`` | ``<repo>/../shared/data`` when that folder exists | the reference data folder |
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ReferenceDataError

ENVIRONMENT_VARIABLE = "ONECARD_REFERENCE_DATA"
CHECKOUT_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def reference_data_dir(environ: dict[str, str] | None = None) -> Path:
    """The reference data folder: ``ONECARD_REFERENCE_DATA``, else ``<repo>/../shared/data``.

    Raises
    ------
    ReferenceDataError
        The variable names a folder that does not exist, or it is unset and there is no
        ``shared/data`` beside the checkout (an installed engine must set it).

    >>> reference_data_dir({"ONECARD_REFERENCE_DATA": "/nonexistent"})
    Traceback (most recent call last):
    ...
    engine.errors.ReferenceDataError: reference data folder /nonexistent (from ONECARD_REFERENCE_DATA) does not exist
    """
    env = os.environ if environ is None else environ
    configured = (env.get(ENVIRONMENT_VARIABLE) or "").strip()
    if configured:
        folder = Path(configured).expanduser()
        if not folder.is_dir():
            raise ReferenceDataError(
                f"reference data folder {folder} (from {ENVIRONMENT_VARIABLE}) does not exist"
            )
        return folder
    if not CHECKOUT_DEFAULT.is_dir():
        raise ReferenceDataError(
            f"reference data not found at {CHECKOUT_DEFAULT}; set {ENVIRONMENT_VARIABLE} "
            "to the shared data folder (the one holding identity/ and iso20022/)"
        )
    return CHECKOUT_DEFAULT


def reference_file(relative: str, environ: dict[str, str] | None = None) -> Path:
    """One file of the reference data, e.g. ``identity/cn_bank_bin/bin.csv``.

    Raises
    ------
    ReferenceDataError
        The folder or the file is missing; the message names the full path.
    """
    path = reference_data_dir(environ) / relative
    if not path.is_file():
        raise ReferenceDataError(f"reference data file {path} is missing")
    return path
