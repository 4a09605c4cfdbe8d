"""Known-answer vector files for ARQC verification and ARPC generation.

The format is the one of ``shared/data/emv/vectors.json`` (described in the README beside
it): a JSON list of cases, each ``valid`` (the ARQC verifies, every ARPC matches, every
given intermediate key and KCV matches) or ``invalid`` (verification must fail).
:func:`check_case` runs one case through a :class:`Verifier` and returns its failures;
messages name the field that differs, never a key value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import msgspec

from hsm import scheme as schemes
from hsm.ciphers import adjust_parity, key_check_value
from hsm.inputs import from_hex

VECTOR_FILE_SIZE_MAX = 16 * 1024 * 1024


class ArpcCase(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One expected ARPC of a case: method 1 with ``arc_hex`` or 2 with ``csu_hex``."""

    method: Literal[1, 2]
    key: Literal["icc_master_key", "session_key"]
    arpc_hex: str
    arc_hex: str | None = None
    csu_hex: str | None = None
    proprietary_auth_data_hex: str = ""


class VectorCase(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One case of a vector file (fields as in ``shared/data/emv/README.md``)."""

    id: str
    kind: Literal["arqc", "derivation"]
    expect: Literal["valid", "invalid"]
    alg: Literal["3DES", "AES-128", "SM4"]
    master_key_derivation: Literal["A", "B"]
    session_key_derivation: Literal["none", "emv_csk", "mastercard", "common_r", "pboc"]
    issuer_master_key_hex: str
    pan: str
    pan_sequence_number: str
    scheme: str = ""
    source: str = ""
    notes: str = ""
    ac_mac: Literal["alg3_pad1", "alg3_pad2", "cmac8"] | None = None
    transaction_data_hex: str | None = None
    arqc_hex: str | None = None
    atc_hex: str | None = None
    unpredictable_number_hex: str | None = None
    diversification_r_hex: str | None = None
    cdol1_tags: dict[str, str] | None = None
    icc_master_key_hex: str | None = None
    session_key_hex: str | None = None
    icc_master_key_kcv: str | None = None
    session_key_kcv: str | None = None
    arpc: list[ArpcCase] = []
    negative_of: str | None = None
    mutation: str | None = None

    def to_scheme(self) -> schemes.Scheme:
        """The case's scheme (derivation-only cases get the MAC their cipher uses)."""
        ac_mac = self.ac_mac or ("alg3_pad2" if self.alg == "3DES" else "cmac8")
        return schemes.Scheme(
            self.alg, self.master_key_derivation, self.session_key_derivation, ac_mac
        )


def load_cases(path: Path) -> list[VectorCase]:
    """Read and check a vector file.

    Raises
    ------
    ValueError
        The file is over 16 MiB, not JSON, or a case does not match the format (the
        message names the case index and field).
    """
    data = Path(path).read_bytes()
    if len(data) > VECTOR_FILE_SIZE_MAX:
        raise ValueError(f"vector file is over {VECTOR_FILE_SIZE_MAX} bytes")
    try:
        return msgspec.json.decode(data, type=list[VectorCase])
    except msgspec.ValidationError as error:
        raise ValueError(f"vector file {path.name}: {error}") from None
    except msgspec.DecodeError as error:
        raise ValueError(f"vector file {path.name} is not JSON: {error}") from None


class Verifier(Protocol):
    """What :func:`check_case` needs: the derivations, the MAC and the ARPC of one engine."""

    def keys(self, case: VectorCase) -> tuple[bytes, bytes]:
        """(ICC master key, session key) of the case, for the intermediate checks."""

    def verify(self, case: VectorCase) -> bool:
        """Whether the case's ARQC verifies."""

    def arpc(self, case: VectorCase, expected: ArpcCase) -> bytes:
        """The ARPC for ``expected``'s method, inputs and key."""


class PureVerifier:
    """:class:`Verifier` with the pure functions of :mod:`hsm.scheme`."""

    def keys(self, case: VectorCase) -> tuple[bytes, bytes]:
        scheme = case.to_scheme()
        imk = from_hex("issuer_master_key_hex", case.issuer_master_key_hex, 16)
        mk = schemes.icc_master_key(scheme, imk, case.pan, case.pan_sequence_number)
        return mk, schemes.session_key(scheme, mk, **session_inputs(case))

    def verify(self, case: VectorCase) -> bool:
        _, sk = self.keys(case)
        return schemes.verify_application_cryptogram(
            case.to_scheme(),
            sk,
            from_hex("transaction_data_hex", case.transaction_data_hex or ""),
            from_hex("arqc_hex", case.arqc_hex or "", 8),
        )

    def arpc(self, case: VectorCase, expected: ArpcCase) -> bytes:
        mk, sk = self.keys(case)
        return schemes.generate_arpc(
            case.to_scheme(),
            sk if expected.key == "session_key" else mk,
            from_hex("arqc_hex", case.arqc_hex or "", 8),
            expected.method,
            **arpc_inputs(expected),
        )


def session_inputs(case: VectorCase) -> dict[str, bytes | None]:
    """The keyword arguments of :func:`hsm.scheme.session_key` for a case."""
    r = case.diversification_r_hex
    return {
        "atc": from_hex("atc_hex", case.atc_hex or ""),
        "un": from_hex("unpredictable_number_hex", case.unpredictable_number_hex or ""),
        "r": None if r is None else from_hex("diversification_r_hex", r),
    }


def arpc_inputs(expected: ArpcCase) -> dict[str, bytes | None]:
    """The keyword arguments of :func:`hsm.scheme.generate_arpc` for an expected ARPC."""
    if expected.method == 1:
        return {"arc": from_hex("arc_hex", expected.arc_hex or "", 2)}
    return {
        "csu": from_hex("csu_hex", expected.csu_hex or "", 4),
        "proprietary_auth_data": from_hex(
            "proprietary_auth_data_hex", expected.proprietary_auth_data_hex
        ),
    }


def check_case(case: VectorCase, verifier: Verifier) -> list[str]:
    """The failures of one case (empty when it passes).

    A ``ValueError`` of the engine is a failure of that step on a valid case ("refused:
    ..."), and a pass for the verification of an invalid case.
    """
    failures = []
    if case.expect == "valid":
        failures += _step("keys", lambda: _intermediate_failures(case, verifier))
    if case.kind == "arqc":
        try:
            verified = verifier.verify(case)
        except ValueError as error:
            verified = None
            if case.expect == "valid":
                failures.append(f"ARQC refused: {error}")
        if verified is not None and verified != (case.expect == "valid"):
            failures.append("ARQC verified" if verified else "ARQC did not verify")
    if case.expect == "valid":
        for index, expected in enumerate(case.arpc):
            failures += _step(
                f"arpc[{index}]", lambda n=index, e=expected: _arpc_failures(case, verifier, n, e)
            )
    return failures


def _step(name: str, run) -> list[str]:
    try:
        return run()
    except ValueError as error:
        return [f"{name} refused: {error}"]


def _arpc_failures(
    case: VectorCase, verifier: Verifier, index: int, expected: ArpcCase
) -> list[str]:
    if verifier.arpc(case, expected) != from_hex("arpc_hex", expected.arpc_hex):
        return [f"arpc[{index}] (method {expected.method}) differs"]
    return []


def _intermediate_failures(case: VectorCase, verifier: Verifier) -> list[str]:
    failures = []
    keys = verifier.keys(case)
    given = (
        (case.icc_master_key_hex, case.icc_master_key_kcv),
        (case.session_key_hex, case.session_key_kcv),
    )
    for name, key, (key_hex, kcv_hex) in zip(("icc_master_key", "session_key"), keys, given):
        if key_hex is not None and not _same_key(case, key, from_hex(name, key_hex, 16)):
            failures.append(f"{name} differs")
        if kcv_hex is not None:
            kcv = from_hex(f"{name}_kcv", kcv_hex)
            if key_check_value(case.alg, key)[: len(kcv)] != kcv:
                failures.append(f"{name}_kcv differs")
    return failures


def _same_key(case: VectorCase, ours: bytes, theirs: bytes) -> bool:
    # Some published 3DES keys are printed without parity adjustment; parity bits are not
    # part of a DES key, so they are compared parity-insensitively.
    if case.alg == "3DES":
        return adjust_parity(ours) == adjust_parity(theirs)
    return ours == theirs


class ServiceVerifier:
    """:class:`Verifier` answering from a key service.

    ARQCs and ARPCs are computed by the service (call :meth:`prepare` first, which imports
    each case's issuer master key under a label starting with ``label_prefix``);
    intermediate keys are checked with the pure functions, as the service never gives out
    key values.
    """

    def __init__(self) -> None:
        self._verified: dict[int, bool | ValueError] = {}
        self._arpcs: dict[tuple[int, int], bytes | ValueError] = {}

    @classmethod
    async def prepare(
        cls, service, cases: list[VectorCase], label_prefix: str = "vectors-"
    ) -> "ServiceVerifier":
        from hsm.service import ArqcRequest

        verifier = cls()
        labels: dict[tuple[str, str], str] = {}
        requests: dict[int, ArqcRequest] = {}
        for case in cases:
            if case.kind != "arqc":
                continue
            try:
                scheme = schemes.scheme_name(case.to_scheme())
                imk = from_hex("issuer_master_key_hex", case.issuer_master_key_hex, 16)
                label = labels.get((imk.hex(), scheme))
                if label is None:
                    label = labels[(imk.hex(), scheme)] = f"{label_prefix}{len(labels) + 1}"
                    await service.import_key(label, "imk-ac", case.alg.split("-")[0], imk, scheme)
                inputs = session_inputs(case)
                requests[id(case)] = ArqcRequest(
                    key_label=label,
                    pan=case.pan,
                    psn=case.pan_sequence_number,
                    atc=inputs["atc"],
                    un=inputs["un"],
                    transaction_data=from_hex(
                        "transaction_data_hex", case.transaction_data_hex or ""
                    ),
                    arqc=from_hex("arqc_hex", case.arqc_hex or ""),
                    r=inputs["r"],
                )
            except ValueError as error:
                verifier._verified[id(case)] = error
        results = await service.verify_arqc_batch(list(requests.values()))
        for key, result in zip(requests, results):
            verifier._verified[key] = result == 0
        for case in cases:
            if id(case) not in requests or case.expect != "valid":
                continue
            for index, expected in enumerate(case.arpc):
                try:
                    verifier._arpcs[(id(case), index)] = await service.generate_arpc(
                        requests[id(case)],
                        expected.method,
                        key=expected.key,
                        **arpc_inputs(expected),
                    )
                except ValueError as error:
                    verifier._arpcs[(id(case), index)] = error
        return verifier

    def keys(self, case: VectorCase) -> tuple[bytes, bytes]:
        return PureVerifier().keys(case)

    def verify(self, case: VectorCase) -> bool:
        return _answer(self._verified[id(case)])

    def arpc(self, case: VectorCase, expected: ArpcCase) -> bytes:
        return _answer(self._arpcs[(id(case), case.arpc.index(expected))])


def _answer(value):
    if isinstance(value, ValueError):
        raise value
    return value
