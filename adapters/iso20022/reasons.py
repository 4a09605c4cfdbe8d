"""ISO 20022 code tables used in status and return messages (External Code Sets).

Codes outside :data:`STATUS_REASONS` are written as proprietary reasons (``Prtry``) so
that the engine's own reason codes (``invalid_id_checksum``) reach departments unchanged.
"""

from __future__ import annotations

# ExternalStatusReason1Code / ExternalReturnReason1Code entries the engine and simbank use.
STATUS_REASONS = {
    "AB05": "TimeoutCreditorAgent",
    "AC01": "IncorrectAccountNumber",
    "AC03": "InvalidCreditorAccountNumber",
    "AC04": "ClosedAccountNumber",
    "AC06": "BlockedAccount",
    "AG01": "TransactionForbidden",
    "AM04": "InsufficientFunds",
    "AM05": "Duplication",
    "AM09": "WrongAmount",
    "AM10": "InvalidControlSum",
    "AM18": "InvalidNumberOfTransactions",
    "BE01": "InconsistentWithEndCustomer",
    "CUST": "RequestedByCustomer",
    "DUPL": "DuplicatePayment",
    "FF01": "InvalidFileFormat",
    "MS03": "NotSpecifiedReasonAgentGenerated",
    "NARR": "Narrative",
    "RC01": "BankIdentifierIncorrect",
    "RR04": "RegulatoryReason",
    "TM01": "InvalidCutOffTime",
}

# ExternalPaymentTransactionStatus1Code / ExternalPaymentGroupStatus1Code values.
TRANSACTION_STATUSES = {
    "ACCP": "AcceptedCustomerProfile",
    "ACSC": "AcceptedSettlementCompleted",
    "ACSP": "AcceptedSettlementInProcess",
    "ACTC": "AcceptedTechnicalValidation",
    "ACWC": "AcceptedWithChange",
    "PART": "PartiallyAccepted",
    "PDNG": "Pending",
    "RCVD": "Received",
    "RJCT": "Rejected",
}
# Statuses after which nothing more will happen to a transaction.
FINAL_STATUSES = frozenset({"ACSC", "RJCT"})

assert FINAL_STATUSES <= TRANSACTION_STATUSES.keys()
assert all(len(code) == 4 for code in STATUS_REASONS)


def is_iso_reason(code: str) -> bool:
    """Whether ``code`` is written as ``<Cd>`` (ISO) rather than ``<Prtry>``.

    >>> is_iso_reason("AC04"), is_iso_reason("invalid_id_checksum")
    (True, False)
    """
    return code in STATUS_REASONS
