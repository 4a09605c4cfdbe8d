"""Clearing and settlement: participants, settlement cycles, net positions, the outbox of
instructions to banks, and the PKI of the bank-facing settlement API.

Layers (as Mojaloop's central-settlement): pure domain modules (:mod:`.states`,
:mod:`.positions`, :mod:`.schedule`, :mod:`.report`, :mod:`.instructions`) decide; store
modules (:mod:`.registry`, :mod:`.cycles`, :mod:`.outbox`) lock rows and write them in one
transaction; :mod:`engine.api.banks` is the HTTP face.
"""
