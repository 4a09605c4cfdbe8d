-- Room for HOT updates: a card's row is rewritten by every tap it makes, and no index
-- covers the columns a tap changes.
ALTER TABLE transit_cards SET (fillfactor = 70);

-- The request is kept only to compare a repeated tap_id field by field (read back whole,
-- never queried inside): json is checked and stored as sent, where jsonb would be parsed
-- into its binary form on every insert of the hot path.
ALTER TABLE transit_taps ALTER COLUMN request TYPE json USING request::json;
