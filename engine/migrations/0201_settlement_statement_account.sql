-- The account the engine holds with each bank, as the bank's camt.053 statements name it
-- (Stmt/Acct/Id); '' when not recorded (statements are then matched without that check).
ALTER TABLE settlement_banks ADD COLUMN statement_account text NOT NULL DEFAULT '';
