"""Key ceremony: an issuer master key assembled from components checked by their KCVs."""

from __future__ import annotations

from hsm.ciphers import Alg, key_check_value
from hsm.errors import CeremonyError

COMPONENTS_MIN = 2
COMPONENTS_MAX = 9
KEY_SIZE = 16


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
        Fewer than two components, a component's KCV or the key's KCV not as expected.
    """
    if not COMPONENTS_MIN <= len(components) <= COMPONENTS_MAX:
        raise CeremonyError(
            f"give {COMPONENTS_MIN} to {COMPONENTS_MAX} components, got {len(components)}"
        )
    if component_kcvs and len(component_kcvs) != len(components):
        raise CeremonyError(
            f"give one --component-kcv per component ({len(components)}), got {len(component_kcvs)}"
        )
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
    actual = key_check_value(alg, combined)
    lines.append(f"key KCV {actual.hex().upper()}")
    if actual[: len(kcv)] != kcv or not kcv:
        raise CeremonyError(
            f"key KCV is {actual.hex().upper()}, expected {kcv.hex().upper()}; nothing imported"
        )
    return combined, lines
