"""Known answers: every case of shared/data/emv/vectors.json through the pure functions."""

from __future__ import annotations

import msgspec
import pytest

from hsm.vectors import PureVerifier, VectorCase, check_case, load_cases


def _cases(shared_data_path):
    return load_cases(shared_data_path / "emv" / "vectors.json")


def pytest_generate_tests(metafunc):
    if "vector_case" in metafunc.fixturenames:
        from tests.conftest import SHARED_DATA

        cases = _cases(SHARED_DATA)
        metafunc.parametrize("vector_case", cases, ids=[case.id for case in cases])


def test_every_case_passes(vector_case: VectorCase) -> None:
    assert check_case(vector_case, PureVerifier()) == []


def test_file_has_every_kind_of_case(shared_data) -> None:
    cases = _cases(shared_data)
    assert len(cases) == 73
    assert {case.alg for case in cases} == {"3DES", "AES-128", "SM4"}
    assert {case.session_key_derivation for case in cases} == {
        "none",
        "emv_csk",
        "mastercard",
        "common_r",
        "pboc",
    }
    assert sum(case.expect == "invalid" for case in cases) == 10
    assert sum(len(case.arpc) for case in cases) == 75


def test_a_changed_arpc_is_reported(shared_data) -> None:
    case = next(case for case in _cases(shared_data) if case.arpc)
    wrong = msgspec.to_builtins(case)
    wrong["arpc"][0]["arpc_hex"] = "00" * (len(wrong["arpc"][0]["arpc_hex"]) // 2)
    failures = check_case(msgspec.convert(wrong, VectorCase), PureVerifier())
    assert failures == [f"arpc[0] (method {case.arpc[0].method}) differs"]


def test_an_invalid_case_that_verifies_is_reported(shared_data) -> None:
    case = next(
        case for case in _cases(shared_data) if case.expect == "valid" and case.kind == "arqc"
    )
    flipped = msgspec.structs.replace(case, expect="invalid")
    assert check_case(flipped, PureVerifier()) == ["ARQC verified"]


@pytest.mark.parametrize(
    "text, message",
    [
        (b"not json", "is not JSON"),
        (b'[{"id": "x"}]', "missing required field"),
    ],
)
def test_bad_vector_files_are_refused(tmp_path, text, message) -> None:
    path = tmp_path / "v.json"
    path.write_bytes(text)
    with pytest.raises(ValueError, match=message):
        load_cases(path)


def test_hex_case_never_matters(shared_data) -> None:
    for case in _cases(shared_data):
        lowered = msgspec.convert(
            {
                key: value.lower() if key.endswith("_hex") and isinstance(value, str) else value
                for key, value in msgspec.to_builtins(case).items()
            },
            VectorCase,
        )
        assert check_case(lowered, PureVerifier()) == []
