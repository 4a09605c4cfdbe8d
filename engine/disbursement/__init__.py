"""Disbursement batches: subsidy, benefit and wage payments from department files.

Pure parts (no database): normalising and parsing line fields (:mod:`.text`,
:mod:`.amount`, :mod:`.resident_id`, :mod:`.bank_card`), the per-line result codes
(:mod:`.results`), line validation against a registry lookup (:mod:`.validation`),
cardholder registry import rows (:mod:`.registry`), the batch state table
(:mod:`.lifecycle`) and the department's CSV result file (:mod:`.result_file`). File
formats are read by :mod:`adapters.batch_file`.

With the database: the store (:mod:`.store`: registry, programmes, validation, submit,
approval), the stored lines (:mod:`.lines`), funding and execution (:mod:`.execution`),
reports (:mod:`.report`) and departments on the HTTP API (:mod:`.departments`).
"""
