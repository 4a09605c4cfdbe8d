"""ISO 20022 messages: one module per message family, built and parsed with lxml.

Every message built is validated against its XSD before it leaves, and every message
received is validated on the way in (:mod:`adapters.iso20022.schema`). Amounts are ``int``
minor units inside the engine and exact decimal strings on the wire
(:mod:`adapters.iso20022.money`); message ids and EndToEndIds are reversible encodings of
128-bit ids (:mod:`adapters.iso20022.ids`).
"""
