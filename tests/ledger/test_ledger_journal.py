"""The journal hash: known answers and the record-by-record definition (ledger/journal.py)."""

import hashlib
import struct

from hypothesis import given
from hypothesis import strategies as st

from ledger.journal import GENESIS_HASH, RECORDERS, JournalKind, batch_hash, transfer_prefixes

_U64 = st.integers(0, 2**63 - 1)
_KEY = st.binary(min_size=16, max_size=16)
_TRANSFER_ROW = st.tuples(_KEY, _KEY, _KEY, _U64, _KEY, _KEY, st.integers(-(2**63), 2**63 - 1),
                          st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1), _U64)


def test_transfer_batch_known_answer():
    # One transfer: id 1, debit 2, credit 3, amount 250, ledger 156, code 11, timestamp 10**18,
    # laid out by hand as TigerBeetle's 128-byte record (journal.py docstring).
    row = ((1).to_bytes(16, "big"), (2).to_bytes(16, "big"), (3).to_bytes(16, "big"), 250, bytes(16), bytes(16),
           0, 0, 0, 156, 11, 0, 10**18)
    record = (row[0] + row[1] + row[2] + (250).to_bytes(16, "big") + bytes(32) + bytes(8) + bytes(4) + bytes(4)
              + struct.pack(">IHHq", 156, 11, 0, 10**18))
    assert len(record) == 128
    expected = "06e436bf15d34712fa75a293d74e2db6c797b6068e40cc9af3c31a6f205371f7"
    assert hashlib.sha256(GENESIS_HASH + b"\x02" + record).hexdigest() == expected
    assert batch_hash(GENESIS_HASH, JournalKind.transfers, [row]).hex() == expected


@given(st.lists(_TRANSFER_ROW, max_size=20), st.binary(min_size=32, max_size=32))
def test_batch_hash_is_the_hash_of_the_records(rows, prev_hash):
    records = b"".join(map(RECORDERS[JournalKind.transfers], rows))
    expected = hashlib.sha256(prev_hash + bytes((JournalKind.transfers,)) + records).digest()
    assert batch_hash(prev_hash, JournalKind.transfers, rows) == expected


@given(st.lists(_TRANSFER_ROW, min_size=1, max_size=20), st.binary(min_size=32, max_size=32))
def test_digest_batch_hash_covers_the_records_and_the_first_timestamp(rows, prev_hash):
    records = transfer_prefixes(row[:12] for row in rows)
    assert records == b"".join(RECORDERS[JournalKind.transfers](row)[:120] for row in rows)
    digest = hashlib.sha256(records).digest()
    first = struct.pack(">q", rows[0][12])
    expected = hashlib.sha256(prev_hash + bytes((JournalKind.transfers_digest,)) + first + digest).digest()
    assert batch_hash(prev_hash, JournalKind.transfers_digest, rows) == expected
