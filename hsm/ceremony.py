"""Key ceremony: an issuer master key assembled from components checked by their KCVs."""

from __future__ import annotations

from hsm.ciphers import Alg, adjust_parity, key_check_value
from hsm.errors import CeremonyError

COMPONENTS_MIN = 2
COMPONENTS_MAX = 9
KEY_SIZE = 16
DES_KEY_SIZE = 8

# The 4 weak and 12 semi-weak single-DES keys (FIPS 74, section 3.6; NIST SP 800-67r2,
# 3.3.2), with odd parity: no library we depend on has this check, and the table is short.
DES_WEAK_KEYS = frozenset(bytes.fromhex(key) for key in (
    "0101010101010101", "FEFEFEFEFEFEFEFE", "E0E0E0E0F1F1F1F1", "1F1F1F1F0E0E0E0E",
    "011F011F010E010E", "1F011F010E010E01", "01E001E001F101F1", "E001E001F101F101",
    "01FE01FE01FE01FE", "FE01FE01FE01FE01", "1FE01FE00EF10EF1", "E01FE01FF10EF10E",
    "1FFE1FFE0EFE0EFE", "FE1FFE1FFE0EFE0E", "E0FEE0FEF1FEF1FE", "FEE0FEE0FEF1FEF1",
))
assert len(DES_WEAK_KEYS) == 16 and all(adjust_parity(key) == key for key in DES_WEAK_KEYS)


def combine_components(
    alg: Alg, components: list[bytes], component_kcvs: list[bytes], kcv: bytes
) -> tuple[bytes, list[str]]:
    """XOR 16-byte components; return the key and the lines to show (KCVs only).

    Each component's KCV is shown and, when ``component_kcvs`` are given (a prefix of
    the 3-byte KCV each, in order), checked; the key's KCV must start with ``kcv``.

    >>> components = [bytes.fromhex("11" * 16), bytes.fromhex("1032547698BADCFEEFCDAB8967452301")]
    >>> key, lines = combine_components("3DES", components, [], bytes.fromhex("08D7B4"))
    >>> key.hex().upper()
    '0123456789ABCDEFFEDCBA9876543210'
    >>> lines
    ['component 1 KCV 82E136', 'component 2 KCV 8A6416', 'key KCV 08D7B4']

    Raises
    ------
    CeremonyError
        Fewer than two components, two identical components, a component's KCV or the
        key's KCV not as expected, or a key that is no key: all zero, or (3DES) two equal
        halves (single DES) or a weak or semi-weak DES half. Nothing is returned, so
        nothing is stored.
    """
    if not COMPONENTS_MIN <= len(components) <= COMPONENTS_MAX:
        raise CeremonyError(
            f"give {COMPONENTS_MIN} to {COMPONENTS_MAX} components, got {len(components)}"
        )
    if component_kcvs and len(component_kcvs) != len(components):
        raise CeremonyError(
            f"give one --component-kcv per component ({len(components)}), got {len(component_kcvs)}"
        )
    for index, component in enumerate(components, start=1):
        if component in components[: index - 1]:
            first = components.index(component) + 1
            raise CeremonyError(f"component {index} is the same as component {first} "
                                "(their XOR is zero); nothing imported")
    lines, key = [], 0
    for index, component in enumerate(components, start=1):
        actual = key_check_value(alg, component)
        lines.append(f"component {index} KCV {actual.hex().upper()}")
        if component_kcvs and actual[: len(component_kcvs[index - 1])] != component_kcvs[index - 1]:
            raise CeremonyError(
                f"component {index} KCV is {actual.hex().upper()}, "
                f"expected {component_kcvs[index - 1].hex().upper()}"
            )
        key ^= int.from_bytes(component, "big")
    combined = key.to_bytes(KEY_SIZE, "big")
    if combined in components:
        raise CeremonyError("the components XOR to one of themselves (a zero component)")
    _check_key_strength(alg, combined)
    actual = key_check_value(alg, combined)
    lines.append(f"key KCV {actual.hex().upper()}")
    if actual[: len(kcv)] != kcv or not kcv:
        raise CeremonyError(
            f"key KCV is {actual.hex().upper()}, expected {kcv.hex().upper()}; nothing imported"
        )
    return combined, lines


def _check_key_strength(alg: Alg, key: bytes) -> None:
    """Refuse a combined key that is all zero or, for 3DES, degenerate (see Raises above)."""
    if not any(key):
        raise CeremonyError("the components XOR to an all-zero key; nothing imported")
    if alg != "3DES":
        return
    halves = [adjust_parity(key[:DES_KEY_SIZE]), adjust_parity(key[DES_KEY_SIZE:])]
    if halves[0] == halves[1]:
        raise CeremonyError("the key's two halves are equal (3DES would be single DES); nothing imported")
    for name, half in zip(("left", "right"), halves):
        if half in DES_WEAK_KEYS:
            raise CeremonyError(f"the key's {name} half is a weak or semi-weak DES key; nothing imported")
