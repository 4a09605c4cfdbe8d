-- Late taps (engine.fares.pricing: the card's day is re-priced with the late tap in its
-- time position): a late tap that lowers the day's charges refunds the difference, posted
-- operator -> card. A tap record charges fare_minor or refunds refund_minor, never both.
ALTER TABLE transit_taps ADD COLUMN refund_minor bigint NOT NULL DEFAULT 0
    CHECK (refund_minor >= 0 AND (refund_minor = 0 OR fare_minor = 0));
DROP INDEX transit_taps_day;
CREATE INDEX transit_taps_day ON transit_taps (transit_day) WHERE fare_minor > 0 OR refund_minor > 0;
