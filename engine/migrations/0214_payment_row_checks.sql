-- Per-row checks that a million-line disbursement batch paid for and nothing needed
-- (engine/disbursement/execution.py, module docstring). Each foreign key is a trigger per
-- inserted row that looks up and share-locks the parent row; every payment of a bank
-- share-locked the same settlement_banks row, from two transactions at once when two
-- chunks post together (a MultiXact per row).
--
-- settlement_payments rows are written only by engine.settlement.outbox._write_instructions,
-- in the statement after the settlement_outbox row of their message, which carries the
-- same bank_code and is checked against settlement_banks itself; outbox messages and banks
-- are never deleted. Nothing looks payments up by message (the index was unused).
ALTER TABLE settlement_payments DROP CONSTRAINT settlement_payments_message_id_fkey;
ALTER TABLE settlement_payments DROP CONSTRAINT settlement_payments_bank_code_fkey;
DROP INDEX settlement_payments_message;

-- disbursement_payments rows are written only when a batch's funds are committed, one per
-- accepted line of that (locked) batch, with the batch's own programme; batches and
-- programmes are never deleted.
ALTER TABLE disbursement_payments DROP CONSTRAINT disbursement_payments_programme_code_fkey;
ALTER TABLE disbursement_payments DROP CONSTRAINT disbursement_payments_batch_id_fkey;
