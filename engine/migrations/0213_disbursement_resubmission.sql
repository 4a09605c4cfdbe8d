-- The same batch content may be submitted again (engine/disbursement/store.py, submit):
-- for another period (a monthly allowance pays the same people the same amounts every
-- month), and for the same period once the earlier batch was cancelled or rejected. Only
-- a standing batch (any other state) blocks it. Paying a person twice in a period stays
-- impossible through disbursement_payments' primary key (programme, period, person).
-- The state list is engine.disbursement.lifecycle.WITHDRAWN_STATES.

ALTER TABLE disbursement_batches DROP CONSTRAINT disbursement_batches_programme_code_content_sha256_key;

CREATE UNIQUE INDEX disbursement_batches_standing_content
    ON disbursement_batches (programme_code, period, content_sha256)
    WHERE state NOT IN ('cancelled', 'rejected');

-- Newest first per programme and state (onecard batch list).
CREATE INDEX disbursement_batches_listing ON disbursement_batches (programme_code, id DESC);
