-- Executing disbursement batches (engine/disbursement/execution.py): each programme's
-- payer account (registered in settlement_payers, attributed to its bank), the stored lines
-- of every batch, and the lines' own fields sealed per chunk by the key service (they carry
-- identity and card numbers, which are never stored in clear).

ALTER TABLE disbursement_programmes ADD COLUMN payer_bank_code text REFERENCES settlement_banks;

-- Failed reservations (not enough funds) are voided; the next attempt uses new transfer ids.
ALTER TABLE disbursement_batches ADD COLUMN execution_attempt integer NOT NULL DEFAULT 0;

CREATE TABLE disbursement_lines (
    batch_id        bigint NOT NULL REFERENCES disbursement_batches,
    line            integer NOT NULL CHECK (line >= 1),
    result          smallint NOT NULL CHECK (result >= 0),
    amount_minor    bigint,
    -- Accepted lines only: the card's token, its issuing bank and the registered name.
    pan_token       text,
    bank_code       text,
    name            text,
    -- The pacs.008 EndToEndId once the line's payment is posted (status joins settlement_payments).
    end_to_end_id   text UNIQUE,
    PRIMARY KEY (batch_id, line),
    CHECK ((result = 0) = (pan_token IS NOT NULL AND amount_minor > 0))
);

CREATE TABLE disbursement_line_fields (
    batch_id     bigint NOT NULL REFERENCES disbursement_batches,
    chunk        integer NOT NULL CHECK (chunk >= 0),
    first_line   integer NOT NULL CHECK (first_line >= 1),
    sealed       bytea NOT NULL,
    PRIMARY KEY (batch_id, chunk)
);
