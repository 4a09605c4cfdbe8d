-- Room for HOT updates: account balances change on every transfer.
ALTER TABLE ledger_accounts SET (fillfactor = 70);

-- History rows name their transfer, so get_account_balances joins by primary key.
ALTER TABLE ledger_account_balances ADD COLUMN transfer_id bytea;
UPDATE ledger_account_balances b SET transfer_id = t.id
FROM ledger_transfers t
WHERE t.timestamp = b.timestamp AND (t.debit_account_id = b.account_id OR t.credit_account_id = b.account_id);
ALTER TABLE ledger_account_balances ALTER COLUMN transfer_id SET NOT NULL;
