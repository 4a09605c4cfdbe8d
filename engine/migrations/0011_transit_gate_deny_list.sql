-- The deny list as gates hold it (terminal.gate.DenyList): salted SHA-256 of each denied
-- card's PAN, so a gate matches the PAN it reads without the engine sending tokens or PANs.
-- The salt is per deployment (not secret: a gate must compute the hash); the version
-- increases with every change of the list.
CREATE TABLE transit_deny_list_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    salt       bytea NOT NULL CHECK (length(salt) BETWEEN 16 AND 64),
    version    bigint NOT NULL DEFAULT 1
);
INSERT INTO transit_deny_list_state (salt)
VALUES (decode(md5(random()::text || clock_timestamp()::text)
               || md5(random()::text || pg_backend_pid()::text), 'hex'));

-- hex SHA-256 of salt || PAN, set at enrolment (terminal.gate.card_hash).
ALTER TABLE transit_cards ADD COLUMN pan_hash text;
