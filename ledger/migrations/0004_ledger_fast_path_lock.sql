-- The fast path of create_transfers (migration 0003) with a shorter critical section: the
-- batch's per-account sums are made, and its transfers inserted, before the journal head
-- is taken; under the head only the balances (the account check is part of their UPDATE,
-- in bigint arithmetic, not numeric), the journal row and the head are written.
-- Autocommitted callers use the procedure ledger_post_transfers_fast (see there); callers
-- inside a transaction use the function ledger_create_transfers_fast, which takes the
-- head first, and whose contract changes in one way: a batch it declines after taking the
-- head raises SQLSTATE OCF01 instead of returning false (nothing is written either way;
-- the caller runs the exact rules).
--
-- records: as in 0003, canonical records without timestamps, 120 bytes each, every one a
-- plain transfer (flags, pending_id, timeout_s and timestamp zero, ids valid and
-- distinct, accounts different, ledger and code non-zero; the caller checks this).
-- digest: SHA-256 of records. now_ns: the caller's clock.

-- The batch's debits and credits per account (sums of its amounts), and each account's
-- ledger. fine is false when no batch with these sums can pass: a sum does not fit a
-- bigint, or an account's transfers have different ledgers. Reads no table.
CREATE FUNCTION ledger_fast_sums(records bytea, OUT account_ids bytea[], OUT debits bigint[], OUT credits bigint[],
                                 OUT ledgers bigint[], OUT fine boolean)
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT array_agg(id), array_agg(least(debits, 9223372036854775807)::bigint),
           array_agg(least(credits, 9223372036854775807)::bigint), array_agg(ledger_min),
           coalesce(bool_and(ledger_min = ledger_max AND debits <= 9223372036854775807
                             AND credits <= 9223372036854775807), false)
    FROM (SELECT id, sum(debit) AS debits, sum(credit) AS credits, min(ledger) AS ledger_min, max(ledger) AS ledger_max
          FROM (SELECT substring(records FROM o + 17 FOR 16), amount, 0, ledger
                FROM generate_series(0, length(records) - 120, 120) AS o,
                     LATERAL (SELECT substring(records FROM o + 57 FOR 8)::bigint,
                                     ('\x00000000'::bytea || substring(records FROM o + 113 FOR 4))::bigint) AS x(amount, ledger)
                UNION ALL
                SELECT substring(records FROM o + 33 FOR 16), 0, amount, ledger
                FROM generate_series(0, length(records) - 120, 120) AS o,
                     LATERAL (SELECT substring(records FROM o + 57 FOR 8)::bigint,
                                     ('\x00000000'::bytea || substring(records FROM o + 113 FOR 4))::bigint) AS x(amount, ledger)
               ) AS legs(id, debit, credit, ledger)
          GROUP BY id) AS d
$$;

-- Inserts the batch's transfers with consecutive timestamps in batch order, from just
-- after the last committed batch (or now_ns, if later); returns the first. Run before the
-- journal head is taken, ledger_fast_post checks under the head that no batch committed
-- meanwhile took these timestamps (or any later ones).
CREATE FUNCTION ledger_fast_insert(records bytea, now_ns bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first_ bigint := greatest(now_ns, (SELECT timestamp_last + 1 FROM ledger_head));
BEGIN
    INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, pending_id, user_data_128,
                                  user_data_64, user_data_32, timeout_s, ledger, code, flags, timestamp)
    SELECT substring(records FROM o + 1 FOR 16), substring(records FROM o + 17 FOR 16),
           substring(records FROM o + 33 FOR 16), substring(records FROM o + 57 FOR 8)::bigint,
           '\x00000000000000000000000000000000'::bytea, substring(records FROM o + 81 FOR 16),
           substring(records FROM o + 97 FOR 8)::bigint,
           ('\x00000000'::bytea || substring(records FROM o + 105 FOR 4))::bigint, 0,
           ('\x00000000'::bytea || substring(records FROM o + 113 FOR 4))::bigint,
           ('\x0000'::bytea || substring(records FROM o + 117 FOR 2))::integer, 0, first_ + o / 120
    FROM generate_series(0, length(records) - 120, 120) AS o;
    RETURN first_;
END
$$;

-- Completes the batch inserted by ledger_fast_insert at first_; the caller holds the
-- journal head. Raises OCF02 if a batch committed since took timestamps from first_ on
-- (the caller tries again with fresh ones). Adds the sums to the balances of the accounts
-- that pass every test (exists, same ledger, open, no history, no overflow, limits
-- against the balances before the batch, as in 0003); if any account fails, raises
-- OCF01. Either error rolls the statement back, and with it the transaction or savepoint.
-- Then appends the journal row (kind 4) and moves the head. The arithmetic cannot
-- overflow: every sum and balance is in 0 .. 2^63-1 and each step below stays within
-- -(2^63-1) .. 2^63-1.
CREATE FUNCTION ledger_fast_post(records bytea, digest bytea, first_ bigint, account_ids bytea[], debits bigint[],
                                 credits bigint[], ledgers bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    last_ bigint := first_ + length(records) / 120 - 1;
    head ledger_head%ROWTYPE;
    hash_ bytea;
    updated integer;
BEGIN
    SELECT * INTO head FROM ledger_head;
    IF head.timestamp_last >= first_ THEN
        RAISE EXCEPTION 'ledger fast path: a batch committed meanwhile; new timestamps needed' USING ERRCODE = 'OCF02';
    END IF;
    -- Dynamic, so it is planned for the batch's real number of accounts.
    EXECUTE $update$
        UPDATE ledger_accounts a SET debits_posted = a.debits_posted + d.debits, credits_posted = a.credits_posted + d.credits
        FROM unnest($1, $2, $3, $4) AS d(id, debits, credits, ledger)
        WHERE a.id = d.id AND a.ledger = d.ledger
          AND a.flags & (8 | 32) = 0  -- history, closed
          -- Overflow: sum + pending + posted <= 2^63-1 on each side.
          AND a.debits_posted <= 9223372036854775807 - d.debits - a.debits_pending
          AND a.credits_posted <= 9223372036854775807 - d.credits - a.credits_pending
          -- Limits: sum + pending + posted <= the other side's posted balance.
          AND (a.flags & 2 = 0 OR CASE WHEN a.credits_posted < d.debits THEN false
                                       ELSE a.credits_posted - d.debits - a.debits_pending >= a.debits_posted END)
          AND (a.flags & 4 = 0 OR CASE WHEN a.debits_posted < d.credits THEN false
                                       ELSE a.debits_posted - d.credits - a.credits_pending >= a.credits_posted END)
    $update$ USING account_ids, debits, credits, ledgers;
    GET DIAGNOSTICS updated = ROW_COUNT;
    IF updated <> cardinality(account_ids) THEN
        RAISE EXCEPTION 'ledger fast path: the batch needs the exact rules' USING ERRCODE = 'OCF01';
    END IF;
    hash_ := sha256(head.hash || '\x04'::bytea || first_::bytea || digest);
    INSERT INTO ledger_journal (sequence, kind, timestamp_first, timestamp_last, prev_hash, hash)
    VALUES (head.sequence + 1, 4, first_, last_, head.hash, hash_);
    UPDATE ledger_head SET sequence = head.sequence + 1, timestamp_last = last_, hash = hash_;
END
$$;

-- Refuses malformed arguments (22023) before anything is read or written.
CREATE FUNCTION ledger_fast_check(records bytea, digest bytea) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF length(records) % 120 <> 0 OR length(records) = 0 OR length(digest) <> 32 THEN
        RAISE EXCEPTION 'ledger fast path: records must be a positive multiple of 120 bytes, digest 32 bytes'
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- Inside the caller's transaction: returns false (before taking the head) or true, or
-- raises OCF01 (after taking it). The head's row lock is its own statement: in READ
-- COMMITTED each later statement takes a fresh snapshot, so it sees every batch
-- committed before the head was ours.
CREATE OR REPLACE FUNCTION ledger_create_transfers_fast(records bytea, digest bytea, now_ns bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    sums record;
BEGIN
    PERFORM ledger_fast_check(records, digest);
    sums := ledger_fast_sums(records);
    IF NOT sums.fine THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM ledger_head FOR UPDATE;
    PERFORM ledger_fast_post(records, digest, ledger_fast_insert(records, now_ns), sums.account_ids, sums.debits,
                             sums.credits, sums.ledgers);
    RETURN true;
END
$$;

-- Autocommitted (CALL outside a transaction block): created is true when every transfer
-- was created and committed, false (nothing written) when the sums already decline;
-- raises OCF01 when the accounts decline, OCF02 when its timestamps were overtaken (try
-- again). It sums the batch in a first transaction and commits that (so the snapshot it
-- waits with is its insert's, not the older one of the call); in a second it
-- inserts the transfers, sends the notice OCF03 (the client may start its next call: the
-- next insert then finds this one waiting for the head, so the two take it in timestamp
-- order), waits for the journal head with LOCK TABLE, and under the head posts the
-- balances, the journal row and the head, and commits before CALL returns: the head is
-- held for the balance update and the commit only. EXCLUSIVE conflicts with the exact
-- path's row lock (ROW SHARE) and with itself, not with readers. A waiting call keeps the
-- snapshot of its insert (a procedure keeps its first snapshot after COMMIT until the
-- transaction ends), which keeps the account rows the running batch replaces from being
-- pruned until it proceeds: callers keep few calls waiting.
CREATE PROCEDURE ledger_post_transfers_fast(records bytea, digest bytea, now_ns bigint, INOUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    sums record;
    first_ bigint;
BEGIN
    PERFORM ledger_fast_check(records, digest);
    sums := ledger_fast_sums(records);
    IF NOT sums.fine THEN
        created := false;
        RETURN;
    END IF;
    COMMIT;
    SELECT ledger_fast_insert(records, now_ns) INTO first_;
    RAISE NOTICE 'ledger fast path: inserted, waiting for the journal head' USING ERRCODE = 'OCF03';
    LOCK TABLE ledger_head IN EXCLUSIVE MODE;
    PERFORM ledger_fast_post(records, digest, first_, sums.account_ids, sums.debits, sums.credits, sums.ledgers);
    created := true;
END
$$;
