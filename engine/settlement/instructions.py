"""Settlement instructions: one pacs.008.001.08 per bank and cycle, built with the
iso20022 builders (validated against the XSD before it leaves).

A bank with a negative net position (it owes) is instructed to pay its net from its
settlement account to the engine's clearing account; a bank with a positive net receives
it from the clearing account. The ``EndToEndId`` is that of the reserved ledger transfer
(:func:`adapters.iso20022.ids.end_to_end_id`) and the MsgId is derived from the same id
(kind ``S008``), so the instruction traces back to the ledger and building it again gives
the same ids. Accounts are written as 32 hex digits of the ledger account id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from adapters.iso20022 import ids, pacs008
from engine.settlement.registry import CLEARING_ACCOUNT_ID, CURRENCY

MESSAGE_KIND = "S008"
CLEARING_NAME = "onecard clearing"
PURPOSE = "CASH"


@dataclass(frozen=True, slots=True)
class Instruction:
    """What one bank settles for one cycle; ``net_minor`` != 0 (negative: the bank pays)."""

    cycle_id: int
    bank_code: str
    settlement_account_id: int
    net_minor: int
    transfer_id: int


def account_text(account_id: int) -> str:
    """A ledger account id as written in messages: 32 upper-case hex digits.

    >>> account_text(255)
    '000000000000000000000000000000FF'
    """
    return f"{account_id:032X}"


def build(instruction: Instruction, *, engine_code: str, created_at: dt.datetime) -> pacs008.Message:
    """The validated pacs.008 of ``instruction`` (``Message.xml`` set).

    Raises
    ------
    adapters.errors.SchemaValidationError
        A value breaks the XSD (e.g. an engine code over 35 characters).
    """
    assert instruction.net_minor != 0, "a zero position needs no instruction"
    pays = instruction.net_minor < 0
    bank_account = account_text(instruction.settlement_account_id)
    clearing_account = account_text(CLEARING_ACCOUNT_ID)
    header = pacs008.GroupHeader(
        created_at=created_at, settlement_date=created_at.date(), instructing_agent=engine_code,
        instructed_agent=instruction.bank_code,
        debtor_name=instruction.bank_code if pays else CLEARING_NAME,
        debtor_account=bank_account if pays else clearing_account, purpose=PURPOSE)
    transfer = pacs008.CreditTransfer(
        end_to_end_id=ids.end_to_end_id(instruction.transfer_id), amount_minor=abs(instruction.net_minor),
        currency=CURRENCY, creditor_name=CLEARING_NAME if pays else instruction.bank_code,
        creditor_account=clearing_account if pays else bank_account,
        remittance_information=f"settlement cycle {instruction.cycle_id}")
    message_id = ids.message_id(MESSAGE_KIND, instruction.transfer_id)
    messages = list(pacs008.iter_messages(header, [transfer], next_message_id=lambda: message_id))
    assert len(messages) == 1
    return messages[0]
