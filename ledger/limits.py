"""Every numeric limit of the ledger, in one place, with asserts tying them together.

Identifiers are unsigned 128-bit integers as in TigerBeetle; ``0`` and ``2**128 - 1`` are
reserved. Amounts and balances are integer minor units (fen) stored as PostgreSQL
``bigint``, so every amount and every balance lies in ``0 .. AMOUNT_MAX``; every sum is
checked against that range before it is written (the ``overflows_*`` result codes).
"""

ID_MAX = 2**128 - 1
"""Largest value of a 128-bit field; as an ``id`` it is reserved (``*_must_not_be_int_max``)."""

AMOUNT_MAX = 2**63 - 1
"""Largest amount and largest balance, in minor units (the range of PostgreSQL ``bigint``).

As a transfer amount it also means "as much as possible": post the whole pending amount,
or move the most a balancing transfer may move (TigerBeetle 0.16's ``AMOUNT_MAX`` rule).
"""

USER_DATA_64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
U16_MAX = 2**16 - 1

TIMESTAMP_MAX = 2**63 - 1
"""Largest timestamp in nanoseconds since the Unix epoch (``bigint``; year 2262)."""

BATCH_MAX = 8189
"""Most accounts or transfers in one ``create_*`` call (TigerBeetle's batch limit)."""

LOOKUP_MAX = 8189
"""Most ids in one lookup call and most rows one query returns."""

RETRY_MAX = 16
"""How often a batch is retried after a serialization failure, deadlock or id race."""

NANOSECONDS_PER_SECOND = 1_000_000_000

assert AMOUNT_MAX < ID_MAX
assert TIMESTAMP_MAX + U32_MAX * NANOSECONDS_PER_SECOND > TIMESTAMP_MAX  # timeouts can overflow
assert 1 <= BATCH_MAX <= LOOKUP_MAX
