"""The key service: EMV/PBOC application cryptograms and the programme's keys.

Pure cryptography (no I/O): :mod:`hsm.inputs` (checked inputs), :mod:`hsm.ciphers`
(3DES, AES-128, SM4), :mod:`hsm.derivation` (EMV Book 2 A1.3, A1.4), :mod:`hsm.mac`
(ISO/IEC 9797-1 MAC algorithm 3, CMAC), :mod:`hsm.cryptogram`, :mod:`hsm.arpc`,
:mod:`hsm.scheme` (the facade: ``Scheme``, ``SCHEMES``, ``icc_master_key``,
``session_key``, ``application_cryptogram``, ``generate_arpc``), :mod:`hsm.datakeys`
(HMAC, PAN tokens, sealed fields), :mod:`hsm.ceremony`, :mod:`hsm.vectors`.

The service: :mod:`hsm.service` (``KeyService``, ``ArqcRequest``, ``ArqcResult``,
``open_key_service``) with the backends :mod:`hsm.soft` (+ :mod:`hsm.keystore`) and
:mod:`hsm.token` (PKCS#11); errors in :mod:`hsm.errors`.
"""
