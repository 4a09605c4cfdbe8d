-- Disbursement (engine/disbursement, engine/disbursement/store.py): the cardholder registry,
-- programmes, batches with their state and append-only history, and the payments that make
-- "paid once per person, programme and period" a constraint. Identity numbers are stored only
-- as a keyed hash (HMAC-SHA256 from the key service, for lookups) and sealed (AES-256-GCM by
-- the key service); card numbers only as the key service's token and their last 4 digits.

CREATE TABLE disbursement_cardholders (
    id_hash     bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    id_sealed   bytea NOT NULL,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    pan_token   text NOT NULL UNIQUE CHECK (pan_token ~ '^[0-9a-f]{32}$'),
    pan_last4   text NOT NULL CHECK (pan_last4 ~ '^[0-9]{4}$'),
    bank_code   text NOT NULL,
    status      text NOT NULL CHECK (status IN ('active', 'lost', 'closed')),
    categories  text[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE disbursement_programmes (
    code                  text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,32}$'),
    kind                  text NOT NULL CHECK (kind IN ('subsidy', 'wage')),
    name                  text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 128),
    per_person_max_minor  bigint NOT NULL CHECK (per_person_max_minor > 0),
    -- The ledger account paid from (prefunded); set when the programme is funded.
    funding_account_id    bytea UNIQUE CHECK (octet_length(funding_account_id) = 16),
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE disbursement_batches (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    programme_code  text NOT NULL REFERENCES disbursement_programmes,
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    state           text NOT NULL CHECK (state IN ('received', 'validated', 'approved', 'executing',
                                                   'executed', 'rejected', 'cancelled')),
    submitted_by    text NOT NULL CHECK (char_length(submitted_by) BETWEEN 1 AND 64),
    content_sha256  text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    lines_count     integer NOT NULL CHECK (lines_count >= 0),
    accepted_count  integer NOT NULL CHECK (accepted_count BETWEEN 0 AND lines_count),
    accepted_minor  bigint NOT NULL CHECK (accepted_minor >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The same content submitted again for a programme is refused (the hash ignores
    -- encoding and layout, see engine/disbursement/validation.py).
    UNIQUE (programme_code, content_sha256)
);

CREATE TABLE disbursement_batch_history (
    batch_id        bigint NOT NULL REFERENCES disbursement_batches,
    sequence        integer NOT NULL CHECK (sequence >= 1),
    state           text NOT NULL,
    actor           text NOT NULL,
    at_ms           bigint NOT NULL,
    content_sha256  text NOT NULL,
    PRIMARY KEY (batch_id, sequence)
);

CREATE FUNCTION disbursement_refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'disbursement_batch_history is append-only';
END
$$;

CREATE TRIGGER disbursement_batch_history_append_only
    BEFORE UPDATE OR DELETE ON disbursement_batch_history
    FOR EACH ROW EXECUTE FUNCTION disbursement_refuse_history_change();

CREATE TABLE disbursement_payments (
    programme_code  text NOT NULL REFERENCES disbursement_programmes,
    period          text NOT NULL,
    id_hash         bytea NOT NULL,
    batch_id        bigint NOT NULL REFERENCES disbursement_batches,
    line            integer NOT NULL CHECK (line >= 1),
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (programme_code, period, id_hash)
);
