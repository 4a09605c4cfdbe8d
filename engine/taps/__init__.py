"""The transit tap hot path: decide each tap (pure), record it with the card's state and
its ledger posting in one transaction per micro-batch (store, batcher, service)."""
