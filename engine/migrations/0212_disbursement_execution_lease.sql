-- One execution run per batch at a time (engine/disbursement/execution.py): a lease row,
-- as the outbox dispatcher leases messages, instead of a session advisory lock (portable
-- SQL, no session state; a run that dies is taken over once its lease expires).
CREATE TABLE disbursement_execution_leases (
    batch_id     bigint PRIMARY KEY REFERENCES disbursement_batches,
    holder       text NOT NULL,
    expires_at   timestamptz NOT NULL
);

-- Execution no longer reserves and voids (one escrow transfer is the funds check), so a
-- refused attempt leaves no transfer behind and the next one reuses the same ids.
ALTER TABLE disbursement_batches DROP COLUMN execution_attempt;

-- A chunk of lines records that it was posted (with how many pacs.008 its lines went out
-- in) instead of every line its EndToEndId: line N's transfer id is the batch's base id
-- (time-ordered, ledger.ids, fixed when the funds are committed) + N, and its EndToEndId
-- derived from that (execution.line_transfer_id, line_end_to_end_id).
ALTER TABLE disbursement_line_fields ADD COLUMN posted_messages integer CHECK (posted_messages >= 0);
ALTER TABLE disbursement_lines DROP COLUMN end_to_end_id;
ALTER TABLE disbursement_batches ADD COLUMN execution_base_id bytea CHECK (octet_length(execution_base_id) = 16);
