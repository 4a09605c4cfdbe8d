"""The tamper-evident journal: a SHA-256 hash chain over every committed batch.

Each committed batch holds items of one kind (accounts, transfers or expiries) with
consecutive timestamps; its hash is ``SHA-256(prev_hash || kind (1 byte) || items)``,
where each item is its canonical fixed-size big-endian record below, in timestamp order.
The first batch's ``prev_hash`` is 32 zero bytes. Changing, adding or removing any
journaled row changes a hash, which ``onecard audit`` recomputes.

Transfer batches written by the server-side fast path (kind ``transfers_digest``) hash
``SHA-256(prev_hash || kind || timestamp_first (8 bytes) || SHA-256(records))`` where each
record is the transfer's canonical record without its timestamp (the first 120 bytes):
the timestamps of such a batch are ``timestamp_first`` + 0, 1, 2, ... in record order
(the audit checks that they fill the batch's range), so hashing the first one covers them
all. The inner digest needs no lock to compute, and the outer hash is 73 bytes, cheap
enough for the server to take while it holds the journal head.

Canonical records (TigerBeetle's 128-byte layouts, big-endian):

- transfer: id 16, debit_account_id 16, credit_account_id 16, amount 16, pending_id 16,
  user_data_128 16, user_data_64 8, user_data_32 4, timeout_s 4, ledger 4, code 2,
  flags 2, timestamp 8.
- account: id 16, four balances 64 (zero: as created), user_data_128 16,
  user_data_64 8, user_data_32 4, reserved 4, ledger 4, code 2, flags 2 (without the
  ``closed`` bit, which changes after creation), timestamp 8.
- expiry: pending_id 16, timestamp 8.
"""

from __future__ import annotations

import hashlib
import struct
from enum import IntEnum
from itertools import starmap
from typing import Iterable

HASH_SIZE = 32
TRANSFER_PREFIX_SIZE = 120
"""Bytes of a transfer's canonical record without its timestamp (``transfers_digest``)."""
GENESIS_HASH = bytes(HASH_SIZE)

# Rows are in database column order; user_data_64 is the signed bigint with the same bits.
_TRANSFER_RECORD = struct.Struct(">16s16s16s8xq16s16sqIIIHHq")
_ACCOUNT_RECORD = struct.Struct(">16s64x16sqI4xIHHq")
_TRANSFER_PREFIX = struct.Struct(">16s16s16s8xq16s16sqIIIHH")
_EXPIRY_RECORD = struct.Struct(">16sq")
_TIMESTAMP = struct.Struct(">q")
_ACCOUNT_CLOSED = 1 << 5

assert _TRANSFER_RECORD.size == 128 and _ACCOUNT_RECORD.size == 128 and _EXPIRY_RECORD.size == 24
assert _TRANSFER_PREFIX.size == TRANSFER_PREFIX_SIZE == _TRANSFER_RECORD.size - _TIMESTAMP.size


class JournalKind(IntEnum):
    """What a journal batch holds."""

    accounts = 1
    transfers = 2
    expiries = 3
    transfers_digest = 4


def transfer_record(row: tuple) -> bytes:
    """Canonical 128 bytes of a transfer row (13 columns of ``ledger_transfers``)."""
    return _TRANSFER_RECORD.pack(*row)


def account_record(row: tuple) -> bytes:
    """Canonical 128 bytes of an account row (12 columns of ``ledger_accounts``)."""
    (id, _dp, _dpo, _cp, _cpo, user_data_128, user_data_64, user_data_32, ledger, code, flags, timestamp) = row
    return _ACCOUNT_RECORD.pack(id, user_data_128, user_data_64, user_data_32, ledger, code,
                                flags & ~_ACCOUNT_CLOSED, timestamp)


def transfer_prefixes(rows: Iterable[tuple]) -> bytes:
    """The canonical records without timestamps (120 bytes each) of transfer rows.

    ``rows`` are the first 12 columns of ``ledger_transfers`` (without the timestamp),
    in batch order.
    """
    return b"".join(starmap(_TRANSFER_PREFIX.pack, rows))


def digest_hash(prev_hash: bytes, timestamp_first: int, digest: bytes) -> bytes:
    """``SHA-256(prev_hash || 4 || timestamp_first || digest)``: a ``transfers_digest`` batch.

    ``digest`` is ``SHA-256`` of the batch's :func:`transfer_prefixes` (32 bytes).

    >>> digest_hash(GENESIS_HASH, 7, bytes(32)).hex()[:16]
    'dbbcfab7f45a2b8f'
    """
    assert len(prev_hash) == HASH_SIZE and len(digest) == HASH_SIZE
    kind = bytes((JournalKind.transfers_digest,))
    return hashlib.sha256(prev_hash + kind + _TIMESTAMP.pack(timestamp_first) + digest).digest()


def expiry_record(row: tuple) -> bytes:
    """Canonical 24 bytes of an expiry row (``pending_id``, ``timestamp``)."""
    return _EXPIRY_RECORD.pack(*row)


_PACKERS = {JournalKind.transfers: _TRANSFER_RECORD, JournalKind.expiries: _EXPIRY_RECORD}

RECORDERS = {
    JournalKind.accounts: account_record,
    JournalKind.transfers: transfer_record,
    JournalKind.expiries: expiry_record,
}


def batch_hash(prev_hash: bytes, kind: JournalKind, rows: Iterable[tuple]) -> bytes:
    """``SHA-256(prev_hash || kind || records)`` of one batch (32 bytes).

    >>> batch_hash(GENESIS_HASH, JournalKind.expiries, [(bytes(16), 7)]).hex()[:16]
    'c74a98eee3139f52'
    """
    assert len(prev_hash) == HASH_SIZE
    if kind == JournalKind.transfers_digest:
        rows = list(rows)
        records = transfer_prefixes(row[:12] for row in rows)
        return digest_hash(prev_hash, rows[0][12], hashlib.sha256(records).digest())
    digest = hashlib.sha256(prev_hash)
    digest.update(bytes((kind,)))
    packer = _PACKERS.get(kind)
    # Transfers and expiries are packed straight from their rows by C code (no Python call
    # per row): this runs under the journal head lock, once per transfer.
    records = starmap(packer.pack, rows) if packer else map(RECORDERS[kind], rows)
    digest.update(b"".join(records))
    return digest.digest()
