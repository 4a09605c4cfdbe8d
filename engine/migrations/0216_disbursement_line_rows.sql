-- Per-row checks that a million-line batch submit paid for and nothing needed
-- (engine/disbursement/store.py, DisbursementStore._store_lines; as 0214 for payments).
-- The foreign key was a trigger per stored line that looked up and share-locked the batch
-- row the same transaction had just inserted.
--
-- disbursement_lines rows are written only by DisbursementStore._store_lines, with one
-- COPY in the transaction that inserts their batch row, under that row's id; batches are
-- never deleted.
ALTER TABLE disbursement_lines DROP CONSTRAINT disbursement_lines_batch_id_fkey;
