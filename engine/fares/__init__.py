"""Fare engine: pure pricing of transit taps (no database, no network).

Modules, one concept each:

- :mod:`~engine.fares.money` exact decimal amounts to minor units;
- :mod:`~engine.fares.gtfs` GTFS-Fares v2 loader and leg pricer;
- :mod:`~engine.fares.transfers` ``fare_transfer_rules`` matching and cost algebra;
- :mod:`~engine.fares.stations`, :mod:`~engine.fares.bands` metro network distances and
  distance-band fares;
- :mod:`~engine.fares.riders` rider categories from entitlements and age (TOML rules);
- :mod:`~engine.fares.networks` how a network prices a leg (distance, GTFS, flat);
- :mod:`~engine.fares.state`, :mod:`~engine.fares.days` card state, transit days;
- :mod:`~engine.fares.pricing` ``FareEngine.price_tap(state, tap)``: pairing, transfers, caps;
- :mod:`~engine.fares.config` building an engine from a TOML file;
- :mod:`~engine.fares.aggregation` daily collection amounts per card and bank.

Package data (``engine/fares/data``): ``chengdu_line1.csv`` (Chengdu Metro Line 1
stations and distances, sources in the file), ``rider_rules.toml``, ``chengdu.toml``.
"""
