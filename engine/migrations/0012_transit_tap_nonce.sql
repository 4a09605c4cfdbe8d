-- The nonce of the signed request that brought each tap (engine.taps.service): the same
-- tap_id arriving again under the same device and nonce is that request replayed (maybe
-- to another worker process, whose in-memory nonce memory never saw it), and is refused;
-- a gate's own retry is signed anew and gets the first answer. NULL for taps recorded
-- before this column existed.
ALTER TABLE transit_taps ADD COLUMN request_nonce text;
