-- The double-entry ledger (TigerBeetle data model on PostgreSQL); see ledger/service.py.
-- 128-bit ids are 16-byte big-endian bytea (so byte order = numeric order); amounts and
-- balances are bigint minor units, never negative; timestamps are nanoseconds since the
-- Unix epoch, strictly increasing across accounts, transfers and expiries, assigned in
-- commit order under the ledger_head row lock. Unsigned 64-bit user_data_64 is stored
-- as the bigint with the same 64 bits.

CREATE TABLE ledger_accounts (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    debits_pending bigint NOT NULL CHECK (debits_pending >= 0),
    debits_posted bigint NOT NULL CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL CHECK (credits_pending >= 0),
    credits_posted bigint NOT NULL CHECK (credits_posted >= 0),
    user_data_128 bytea NOT NULL CHECK (octet_length(user_data_128) = 16),
    user_data_64 bigint NOT NULL,
    user_data_32 bigint NOT NULL,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    timestamp bigint NOT NULL
);

CREATE TABLE ledger_transfers (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    debit_account_id bytea NOT NULL,
    credit_account_id bytea NOT NULL,
    amount bigint NOT NULL CHECK (amount >= 0),
    pending_id bytea NOT NULL,
    user_data_128 bytea NOT NULL,
    user_data_64 bigint NOT NULL,
    user_data_32 bigint NOT NULL,
    timeout_s bigint NOT NULL,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    timestamp bigint NOT NULL
);
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account_id, timestamp);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account_id, timestamp);
-- Timestamps grow with insertion order, so a BRIN index serves range cuts cheaply.
CREATE INDEX ledger_transfers_timestamp ON ledger_transfers USING brin (timestamp);

-- State of every pending transfer: 1 pending, 2 posted, 3 voided, 4 expired.
CREATE TABLE ledger_pending (
    id bytea PRIMARY KEY,
    status smallint NOT NULL CHECK (status BETWEEN 1 AND 4),
    expires_at_ns bigint NOT NULL
);
CREATE INDEX ledger_pending_expiry ON ledger_pending (expires_at_ns)
    WHERE status = 1 AND expires_at_ns > 0;

-- Pending transfers released because their timeout passed (journaled like transfers).
CREATE TABLE ledger_expiries (
    pending_id bytea PRIMARY KEY,
    timestamp bigint NOT NULL
);

-- Balances of history accounts after each transfer that touched them.
CREATE TABLE ledger_account_balances (
    account_id bytea NOT NULL,
    timestamp bigint NOT NULL,
    debits_pending bigint NOT NULL,
    debits_posted bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted bigint NOT NULL,
    PRIMARY KEY (account_id, timestamp)
);

-- The tamper-evident journal: one row per committed batch of one kind
-- (1 accounts, 2 transfers, 3 expiries) covering the timestamps first..last;
-- hash = SHA-256(prev_hash || kind || canonical bytes of the batch's items).
CREATE TABLE ledger_journal (
    sequence bigint PRIMARY KEY,
    kind smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
    timestamp_first bigint NOT NULL,
    timestamp_last bigint NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);

-- The single head of the journal; its row lock orders commits and timestamps.
CREATE TABLE ledger_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    sequence bigint NOT NULL,
    timestamp_last bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO ledger_head (sequence, timestamp_last, hash) VALUES (0, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
