-- The server-side fast path of create_transfers (see ledger/service.py): one call posts a
-- batch of plain transfers, deciding, writing and committing while it holds the journal
-- head, so no client round trip is spent holding it. Needs PostgreSQL 18 (bytea <-> integer
-- casts).

-- Journal kind 4: a transfer batch hashed through the digest of its records (ledger/journal.py).
ALTER TABLE ledger_journal DROP CONSTRAINT ledger_journal_kind_check;
ALTER TABLE ledger_journal ADD CONSTRAINT ledger_journal_kind_check CHECK (kind BETWEEN 1 AND 4);

-- records: the batch's transfers as canonical records without timestamps, 120 bytes each
-- (ledger/journal.py), every one a plain transfer: flags, pending_id, timeout_s and
-- timestamp zero, ids valid and distinct, accounts different, ledger and code non-zero
-- (the caller checks this; the function trusts it). digest: SHA-256 of records.
-- now_ns: the caller's clock.
--
-- Returns true when every transfer was created (every result ok). Returns false, having
-- written nothing, when any transfer might get another result: an account is missing,
-- closed, keeps history or has a different ledger, or a balance could overflow or cross
-- its limit. The limit test is conservative: the batch's debits of an account all at once
-- against its credits before the batch (amounts are never negative, so if the whole
-- passes every prefix passes, whatever the order). The caller then runs the exact rules.
-- A transfer id that exists already raises unique_violation (23505): nothing is written.
CREATE FUNCTION ledger_create_transfers_fast(records bytea, digest bytea, now_ns bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    count_ integer := length(records) / 120;
    head ledger_head%ROWTYPE;
    first_ bigint;
    hash_ bytea;
    created boolean;
BEGIN
    IF length(records) % 120 <> 0 OR count_ = 0 OR length(digest) <> 32 THEN
        RAISE EXCEPTION 'ledger_create_transfers_fast: records must be a positive multiple of 120 bytes'
            USING ERRCODE = '22023';
    END IF;
    -- The lock is its own statement: in READ COMMITTED each later statement takes a fresh
    -- snapshot, so it sees every batch committed before the head was ours.
    SELECT * INTO head FROM ledger_head FOR UPDATE;
    first_ := greatest(now_ns, head.timestamp_last + 1);
    hash_ := sha256(head.hash || '\x04'::bytea || first_::bytea || digest);
    WITH staged AS MATERIALIZED (
        SELECT i AS index_,
               substring(records FROM o + 1 FOR 16) AS id,
               substring(records FROM o + 17 FOR 16) AS debit_account_id,
               substring(records FROM o + 33 FOR 16) AS credit_account_id,
               substring(records FROM o + 57 FOR 8)::bigint AS amount,
               substring(records FROM o + 81 FOR 16) AS user_data_128,
               substring(records FROM o + 97 FOR 8)::bigint AS user_data_64,
               ('\x00000000'::bytea || substring(records FROM o + 105 FOR 4))::bigint AS user_data_32,
               ('\x00000000'::bytea || substring(records FROM o + 113 FOR 4))::bigint AS ledger,
               ('\x0000'::bytea || substring(records FROM o + 117 FOR 2))::integer AS code
        FROM generate_series(0, count_ - 1) AS i, LATERAL (SELECT i * 120) AS x(o)
    ),
    deltas AS MATERIALIZED (
        SELECT id, sum(debits) AS debits, sum(credits) AS credits, min(ledger) AS ledger_min, max(ledger) AS ledger_max
        FROM (SELECT debit_account_id, amount, 0, ledger FROM staged
              UNION ALL SELECT credit_account_id, 0, amount, ledger FROM staged) AS legs(id, debits, credits, ledger)
        GROUP BY id
    ),
    -- One row per account of the batch: fine when no transfer can get a result but ok.
    verdict AS (
        SELECT count(a.id) = count(*) AND coalesce(bool_and(
                   a.ledger = d.ledger_min AND a.ledger = d.ledger_max
                   AND a.flags & (8 | 32) = 0  -- history, closed
                   -- The sums are numeric (sum of bigint), so these additions cannot overflow.
                   AND d.debits + a.debits_posted <= 9223372036854775807
                   AND d.credits + a.credits_posted <= 9223372036854775807
                   AND d.debits + a.debits_pending + a.debits_posted <= 9223372036854775807
                   AND d.credits + a.credits_pending + a.credits_posted <= 9223372036854775807
                   -- Limits: against the credits (debits) before the batch, see above.
                   AND (a.flags & 2 = 0 OR d.debits + a.debits_pending + a.debits_posted <= a.credits_posted)
                   AND (a.flags & 4 = 0 OR d.credits + a.credits_pending + a.credits_posted <= a.debits_posted)
               ), false) AS fine
        FROM deltas d LEFT JOIN ledger_accounts a ON a.id = d.id
    ),
    transfers AS (
        INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, pending_id, user_data_128,
                                      user_data_64, user_data_32, timeout_s, ledger, code, flags, timestamp)
        SELECT s.id, s.debit_account_id, s.credit_account_id, s.amount, '\x00000000000000000000000000000000'::bytea,
               s.user_data_128, s.user_data_64, s.user_data_32, 0, s.ledger, s.code, 0, first_ + s.index_
        FROM staged s WHERE (SELECT fine FROM verdict)
    ),
    accounts AS (
        UPDATE ledger_accounts a
        SET debits_posted = a.debits_posted + d.debits, credits_posted = a.credits_posted + d.credits
        FROM deltas d WHERE a.id = d.id AND (SELECT fine FROM verdict)
    ),
    journal AS (
        INSERT INTO ledger_journal (sequence, kind, timestamp_first, timestamp_last, prev_hash, hash)
        SELECT head.sequence + 1, 4, first_, first_ + count_ - 1, head.hash, hash_
        WHERE (SELECT fine FROM verdict)
    ),
    new_head AS (
        UPDATE ledger_head SET sequence = head.sequence + 1, timestamp_last = first_ + count_ - 1, hash = hash_
        WHERE (SELECT fine FROM verdict)
    )
    SELECT v.fine INTO created FROM verdict v;
    RETURN created;
END
$$;
