-- The nonces of signed requests seen by any engine process, for every signed API (the bank
-- API's table, generalised): a request replayed to another worker process, whose in-memory
-- nonce memory never saw it, is refused (engine.api.nonces). ``api`` names the key space
-- (bank codes of the bank API, device ids of the device API); rows older than twice the
-- allowed clock skew are pruned (their timestamps are refused anyway).
ALTER TABLE settlement_nonces RENAME TO request_nonces;
ALTER TABLE request_nonces RENAME COLUMN bank_code TO key_id;
ALTER TABLE request_nonces ADD COLUMN api text NOT NULL DEFAULT 'bank';
ALTER TABLE request_nonces ALTER COLUMN api DROP DEFAULT;
ALTER TABLE request_nonces DROP CONSTRAINT settlement_nonces_pkey;
ALTER TABLE request_nonces ADD PRIMARY KEY (api, key_id, nonce);
ALTER INDEX settlement_nonces_seen RENAME TO request_nonces_seen;
