-- The fast path's procedure (migration 0004) with a shorter turn: the batch's transfers
-- are inserted first, the notice OCF03 (the client's next call may insert now) is sent
-- right after, and only then are the per-account sums made, while this call would wait for
-- the journal head anyway. The sums read no table, so where they run changes no result;
-- the client's one-at-a-time turn (ledger/service.py) now covers the insert alone, which
-- is the step that orders the timestamps. The price: a batch the sums decline (a sum does
-- not fit a bigint, or an account's transfers have different ledgers; both rare) is
-- inserted first and then rolled back with OCF01, the same answer as the accounts' decline
-- (the caller runs the exact rules either way; nothing is written).
--
-- Arguments and answers as in 0004, except that created is never false: a declined batch
-- raises OCF01. ledger_create_transfers_fast (inside a caller's transaction) is unchanged.
CREATE OR REPLACE PROCEDURE ledger_post_transfers_fast(records bytea, digest bytea, now_ns bigint, INOUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    sums record;
    first_ bigint;
BEGIN
    PERFORM ledger_fast_check(records, digest);
    SELECT ledger_fast_insert(records, now_ns) INTO first_;
    RAISE NOTICE 'ledger fast path: inserted, waiting for the journal head' USING ERRCODE = 'OCF03';
    sums := ledger_fast_sums(records);
    IF NOT sums.fine THEN
        RAISE EXCEPTION 'ledger fast path: the batch needs the exact rules' USING ERRCODE = 'OCF01';
    END IF;
    LOCK TABLE ledger_head IN EXCLUSIVE MODE;
    PERFORM ledger_fast_post(records, digest, first_, sums.account_ids, sums.debits, sums.credits, sums.ledgers);
    created := true;
END
$$;

