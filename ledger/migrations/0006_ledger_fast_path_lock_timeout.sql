-- The fast path's procedure (migration 0005) gives way to a caller's transaction it would
-- deadlock with. It inserts its transfers before it waits for the journal head; a caller's
-- transaction that holds the head and then writes one of those ids waits for this call,
-- which waits for the caller: a deadlock, and PostgreSQL aborts whichever side's deadlock
-- check runs first, the caller's if this call had been waiting longer than
-- deadlock_timeout. So this call waits for locks at most half of deadlock_timeout
-- (lock_timeout, this transaction only): it always gives up (SQLSTATE 55P03, nothing
-- written) before the caller's check can run, and the client sends it again or hands the
-- batch to the exact path (ledger/service.py). The wait it bounds is normally one other
-- batch's balance update and commit (tens of ms).
--
-- Arguments and answers as in 0005, plus 55P03 (lock_not_available): try again.
CREATE OR REPLACE PROCEDURE ledger_post_transfers_fast(records bytea, digest bytea, now_ns bigint, INOUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    sums record;
    first_ bigint;
BEGIN
    PERFORM ledger_fast_check(records, digest);
    PERFORM set_config('lock_timeout',
                       greatest(1, extract(epoch FROM current_setting('deadlock_timeout')::interval) * 500)::bigint || 'ms',
                       true);
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
