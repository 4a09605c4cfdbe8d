-- A tap is identified by its gate and its tap_id together (engine.taps.service, "Tap
-- identity"): gates number their own taps, so two gates may use the same tap_id, and one
-- device can no longer take another gate's tap_id. Existing ids are unique alone, so they
-- are unique per gate too. tap_id leads the key: the flush looks a batch's taps up by
-- tap_id in one index scan (engine.taps.store.fetch_taps).
ALTER TABLE transit_taps DROP CONSTRAINT transit_taps_pkey;
ALTER TABLE transit_taps ADD PRIMARY KEY (tap_id, device_id);
