"""Time-ordered 128-bit identifiers for accounts and transfers (as TigerBeetle's ``id()``).

An id is the Unix time in milliseconds (48 bits) followed by 80 random bits. Ids made
in the same millisecond by one process increase by one, so ids of one process are
strictly increasing; that keeps inserts at the right edge of the primary-key index.
The value is never ``0`` nor ``2**128 - 1`` (both reserved).
"""

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_last_random = 0
_RANDOM_BITS = 80
_RANDOM_MAX = 2**_RANDOM_BITS - 1


def _fresh_random() -> int:
    # The top bit stays clear so the counter has room to count up within a millisecond.
    return int.from_bytes(os.urandom(10), "big") >> 1


def new_id() -> int:
    """A fresh 128-bit id: 48-bit milliseconds since the epoch, then 80 random bits.

    >>> a, b = new_id(), new_id()
    >>> 0 < a < b < 2**128 - 1
    True
    >>> abs((a >> 80) - int(__import__("time").time() * 1000)) < 60_000
    True
    """
    return new_id_run(1)


def new_id_run(count: int) -> int:
    """The first of ``count`` consecutive fresh ids (``first`` .. ``first + count - 1``),
    all reserved: no later id of this process falls among them. For callers that derive
    ids as a base plus an offset (a batch's line transfers), so two runs drawn in the same
    millisecond cannot overlap.

    >>> first = new_id_run(1_000)
    >>> first + 999 < new_id()
    True

    Raises
    ------
    ValueError
        ``count`` is not 1 to 2**64.
    """
    if not 1 <= count <= 2**64:
        raise ValueError(f"count: must be 1 to 2**64, got {count}")
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            # Same (or a stepped-back) millisecond: keep the order by counting up.
            now_ms, random = _last_ms, _last_random + 1
            if random + count - 1 > _RANDOM_MAX:
                now_ms, random = now_ms + 1, _fresh_random()
        else:
            random = _fresh_random()
        _last_ms, _last_random = now_ms, random + count - 1
    value = (now_ms << _RANDOM_BITS) | random
    assert 0 < value and value + count - 1 < 2**128 - 1
    return value
