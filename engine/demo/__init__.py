"""``onecard demo``: one realistic programme day on the embedded default, step by step.

Each step is a module; :mod:`engine.demo.run` composes them:

1. :mod:`engine.demo.world`: a fresh database and key store for this run, three partner
   banks (each a :class:`adapters.simbank.SimBank` on loopback), a metro operator (Chengdu
   Line 1 distance bands), a bus operator (flat fares, bus→metro transfer discount), a
   subsidy fund and an employer;
2. :mod:`engine.demo.cardholders`: synthetic cardholders (:class:`engine.synthetic.Population`);
3. :mod:`engine.demo.keys`: issuer master keys through the key ceremony (components and
   KCVs), cards personalised by the gate simulator;
4. :mod:`engine.demo.transit`: a transit day over HTTP against ``onecard serve``;
5. :mod:`engine.demo.batches`: a subsidy batch (GBK CSV with bad lines) and a wage batch
   (XLSX), submitted and approved by a second user;
6. :mod:`engine.demo.clearing`: close the settlement cycle, exchange pacs.008/pacs.002
   and camt.053 with the simbanks, reconcile, audit the ledger;
7. :mod:`engine.demo.report`: the summary, CSV reports and PNG charts in ``--out``.
"""

from pathlib import Path

CARDHOLDERS_DEFAULT = 10_000
TAPS_DEFAULT = 100_000
OUT_DEFAULT = Path("demo-out")
