-- Clearing and settlement (engine/settlement): participants, attribution of ledger accounts
-- to banks, settlement cycles with append-only history, frozen net positions, the outbox
-- of instructions to banks and the inbound message log. Ledger ids are 16-byte bytea as in
-- ledger_accounts, so positions are computed by joining the ledger directly.

CREATE TABLE settlement_banks (
    bank_code              text PRIMARY KEY CHECK (bank_code ~ '^[A-Z0-9]{2,16}$'),
    name                   text NOT NULL,
    settlement_account_id  bytea NOT NULL UNIQUE CHECK (octet_length(settlement_account_id) = 16),
    net_debit_cap_minor    bigint NOT NULL CHECK (net_debit_cap_minor >= 0),
    -- How instructions reach the bank: 'push' (HTTPS to endpoint), 'file' (drop into
    -- endpoint as a directory) or 'pull' (the bank downloads them from the settlement API).
    delivery               text NOT NULL DEFAULT 'pull' CHECK (delivery IN ('push', 'file', 'pull')),
    endpoint               text NOT NULL DEFAULT '',
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE settlement_operators (
    operator_id  text PRIMARY KEY,
    bank_code    text NOT NULL REFERENCES settlement_banks,
    account_id   bytea NOT NULL UNIQUE
);

CREATE TABLE settlement_payers (
    payer_id     text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('funding', 'wage')),
    bank_code    text NOT NULL REFERENCES settlement_banks,
    account_id   bytea NOT NULL UNIQUE
);

-- Every ledger account that takes part in clearing, and the bank it is held at.
CREATE TABLE settlement_accounts (
    account_id   bytea PRIMARY KEY CHECK (octet_length(account_id) = 16),
    bank_code    text NOT NULL REFERENCES settlement_banks,
    kind         text NOT NULL CHECK (kind IN ('settlement', 'operator', 'funding', 'wage', 'card'))
);
CREATE INDEX settlement_accounts_bank ON settlement_accounts (bank_code, kind);

-- A cycle covers the ledger timestamps (timestamp_after, timestamp_last]; the open cycle has
-- timestamp_last NULL. Exactly one cycle is OPEN at any time.
CREATE TABLE settlement_cycles (
    cycle_id         bigint PRIMARY KEY,
    state            text NOT NULL CHECK (state IN ('OPEN', 'CLOSED', 'PENDING_SETTLEMENT', 'SETTLED')),
    timestamp_after  bigint NOT NULL,
    timestamp_last   bigint,
    transfer_count   bigint NOT NULL DEFAULT 0,
    -- Transfers of the cycle with an account no bank is attributed (left out of positions).
    unattributed_count bigint NOT NULL DEFAULT 0,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    settled_at       timestamptz,
    -- The scheduled close time this cycle was closed for (NULL: closed on demand).
    scheduled_close_at timestamptz UNIQUE,
    CHECK ((state = 'OPEN') = (timestamp_last IS NULL))
);
CREATE UNIQUE INDEX settlement_cycles_one_open ON settlement_cycles (state) WHERE state = 'OPEN';
INSERT INTO settlement_cycles (cycle_id, state, timestamp_after) VALUES (1, 'OPEN', 0);

CREATE TABLE settlement_cycle_history (
    cycle_id    bigint NOT NULL REFERENCES settlement_cycles,
    sequence    integer NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    actor       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cycle_id, sequence)
);
INSERT INTO settlement_cycle_history (cycle_id, sequence, from_state, to_state, actor)
VALUES (1, 1, NULL, 'OPEN', 'migration');

-- Frozen at close: what each bank owes (debit) and is owed (credit) in the cycle.
CREATE TABLE settlement_positions (
    cycle_id      bigint NOT NULL REFERENCES settlement_cycles,
    bank_code     text NOT NULL REFERENCES settlement_banks,
    debit_minor   bigint NOT NULL CHECK (debit_minor >= 0),
    credit_minor  bigint NOT NULL CHECK (credit_minor >= 0),
    net_minor     bigint NOT NULL CHECK (net_minor = credit_minor - debit_minor),
    -- The pending ledger transfer moving the net between the bank's settlement account
    -- and the clearing account; posted when the cycle settles (NULL when net is 0).
    transfer_id   bytea,
    confirmed_at  timestamptz,
    PRIMARY KEY (cycle_id, bank_code)
);

-- Messages to banks, written in the transaction of the postings they carry.
CREATE TABLE settlement_outbox (
    message_id       text PRIMARY KEY,
    bank_code        text NOT NULL REFERENCES settlement_banks,
    kind             text NOT NULL CHECK (kind IN ('payout', 'settlement')),
    cycle_id         bigint REFERENCES settlement_cycles,
    xml              bytea NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX settlement_outbox_due ON settlement_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX settlement_outbox_bank ON settlement_outbox (bank_code, kind, cycle_id);

-- One row per transaction of a payout message: its ledger transfer and bank status.
CREATE TABLE settlement_payments (
    end_to_end_id      text PRIMARY KEY,
    message_id         text NOT NULL REFERENCES settlement_outbox,
    bank_code          text NOT NULL REFERENCES settlement_banks,
    transfer_id        bytea NOT NULL UNIQUE,
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    currency           text NOT NULL,
    status             text NOT NULL DEFAULT 'SENT',
    reason_code        text NOT NULL DEFAULT '',
    -- The reversing transfer (rejection or return), at most one per payment.
    reversal_id        bytea,
    returned           boolean NOT NULL DEFAULT false,
    -- When the final ACSC and the return were recorded (the bank books them those days).
    accepted_at        timestamptz,
    returned_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlement_payments_message ON settlement_payments (message_id);

-- Messages received from banks (pacs.002, pacs.004, camt.053): idempotent on MsgId.
CREATE TABLE settlement_inbound (
    bank_code    text NOT NULL REFERENCES settlement_banks,
    message_id   text NOT NULL,
    kind         text NOT NULL,
    sha256       bytea NOT NULL,
    answer       bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bank_code, message_id)
);

CREATE TABLE settlement_alerts (
    alert_id      bigserial PRIMARY KEY,
    cycle_id      bigint NOT NULL REFERENCES settlement_cycles,
    bank_code     text NOT NULL REFERENCES settlement_banks,
    kind          text NOT NULL,
    net_minor     bigint NOT NULL,
    cap_minor     bigint NOT NULL,
    raised_at     timestamptz NOT NULL DEFAULT now()
);

-- Nonces of signed bank requests seen by any engine process (replays refused across
-- processes); rows older than the allowed clock skew are pruned.
CREATE TABLE settlement_nonces (
    bank_code  text NOT NULL,
    nonce      text NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bank_code, nonce)
);
CREATE INDEX settlement_nonces_seen ON settlement_nonces (seen_at);
