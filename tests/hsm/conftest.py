"""A SoftHSM2 token of its own for the hsm tests (in a temporary folder)."""

from __future__ import annotations

import pytest

from hsm.softhsm import create_token, softhsm_available


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory) -> dict[str, str]:
    """Environment of the pkcs11 backend on a fresh SoftHSM2 token (skips without softhsm2).

    One token for the session (SoftHSM reads its configuration once per process); each
    test uses its own key labels.
    """
    if not softhsm_available():
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    return create_token(tmp_path_factory.mktemp("softhsm"), "onecard-test", "4711-test")
