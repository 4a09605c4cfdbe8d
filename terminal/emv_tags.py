"""Names and formats of EMV data elements (EMV 4.4 Book 3, Annex A1; PBOC 3.0 part 5).

``TAGS`` maps an upper-case hex tag to ``(name, format)`` where the format is one of the
Book 3 notations: ``b`` binary, ``n`` numeric BCD (right-justified, leading zeros), ``cn``
compressed numeric (left-justified, trailing ``F``), ``an``/``ans`` text, ``var``
(template or proprietary). Tags not listed are shown as "unknown tag".

>>> tag_name("9F26")
'Application Cryptogram'
>>> tag_format("9F02"), tag_format("DF01")
('n', 'b')
"""

from __future__ import annotations

TAGS: dict[str, tuple[str, str]] = {
    "42": ("Issuer Identification Number (IIN)", "n"),
    "4F": ("Application Identifier (AID) - card", "b"),
    "50": ("Application Label", "ans"),
    "57": ("Track 2 Equivalent Data", "b"),
    "5A": ("Application Primary Account Number (PAN)", "cn"),
    "5F20": ("Cardholder Name", "ans"),
    "5F24": ("Application Expiration Date", "n"),
    "5F25": ("Application Effective Date", "n"),
    "5F28": ("Issuer Country Code", "n"),
    "5F2A": ("Transaction Currency Code", "n"),
    "5F2D": ("Language Preference", "an"),
    "5F30": ("Service Code", "n"),
    "5F34": ("Application PAN Sequence Number (PSN)", "n"),
    "5F36": ("Transaction Currency Exponent", "n"),
    "61": ("Application Template", "var"),
    "6F": ("File Control Information (FCI) Template", "var"),
    "70": ("READ RECORD Response Message Template", "var"),
    "71": ("Issuer Script Template 1", "var"),
    "72": ("Issuer Script Template 2", "var"),
    "77": ("Response Message Template Format 2", "var"),
    "80": ("Response Message Template Format 1", "var"),
    "82": ("Application Interchange Profile (AIP)", "b"),
    "83": ("Command Template", "var"),
    "84": ("Dedicated File (DF) Name", "b"),
    "87": ("Application Priority Indicator", "b"),
    "88": ("Short File Identifier (SFI)", "b"),
    "8A": ("Authorisation Response Code", "an"),
    "8C": ("Card Risk Management Data Object List 1 (CDOL1)", "b"),
    "8D": ("Card Risk Management Data Object List 2 (CDOL2)", "b"),
    "8E": ("Cardholder Verification Method (CVM) List", "b"),
    "8F": ("Certification Authority Public Key Index", "b"),
    "90": ("Issuer Public Key Certificate", "b"),
    "91": ("Issuer Authentication Data", "b"),
    "92": ("Issuer Public Key Remainder", "b"),
    "94": ("Application File Locator (AFL)", "var"),
    "95": ("Terminal Verification Results (TVR)", "b"),
    "9A": ("Transaction Date", "n"),
    "9C": ("Transaction Type", "n"),
    "9F01": ("Acquirer Identifier", "n"),
    "9F02": ("Amount, Authorised (Numeric)", "n"),
    "9F03": ("Amount, Other (Numeric)", "n"),
    "9F07": ("Application Usage Control", "b"),
    "9F08": ("Application Version Number - card", "b"),
    "9F09": ("Application Version Number - terminal", "b"),
    "9F0D": ("Issuer Action Code - Default", "b"),
    "9F0E": ("Issuer Action Code - Denial", "b"),
    "9F0F": ("Issuer Action Code - Online", "b"),
    "9F10": ("Issuer Application Data (IAD)", "b"),
    "9F11": ("Issuer Code Table Index", "n"),
    "9F12": ("Application Preferred Name", "ans"),
    "9F13": ("Last Online ATC Register", "b"),
    "9F1A": ("Terminal Country Code", "n"),
    "9F1E": ("Interface Device (IFD) Serial Number", "an"),
    "9F21": ("Transaction Time", "n"),
    "9F26": ("Application Cryptogram", "b"),
    "9F27": ("Cryptogram Information Data (CID)", "b"),
    "9F32": ("Issuer Public Key Exponent", "b"),
    "9F33": ("Terminal Capabilities", "b"),
    "9F34": ("Cardholder Verification Method (CVM) Results", "b"),
    "9F35": ("Terminal Type", "n"),
    "9F36": ("Application Transaction Counter (ATC)", "b"),
    "9F37": ("Unpredictable Number (UN)", "b"),
    "9F38": ("Processing Options Data Object List (PDOL)", "b"),
    "9F41": ("Transaction Sequence Counter", "n"),
    "9F42": ("Application Currency Code", "n"),
    "9F46": ("ICC Public Key Certificate", "b"),
    "9F47": ("ICC Public Key Exponent", "b"),
    "9F48": ("ICC Public Key Remainder", "b"),
    "9F4A": ("Static Data Authentication Tag List", "b"),
    "9F4B": ("Signed Dynamic Application Data", "b"),
    "9F4C": ("ICC Dynamic Number", "b"),
    "9F4D": ("Log Entry", "b"),
    "9F4E": ("Merchant Name and Location", "ans"),
    "9F5D": ("Available Offline Spending Amount", "b"),
    "9F66": ("Terminal Transaction Qualifiers (TTQ)", "b"),
    "9F6C": ("Card Transaction Qualifiers (CTQ)", "b"),
    "9F74": ("VLP Issuer Authorisation Code (PBOC ECash)", "a"),
    "9F79": ("Electronic Cash Balance (PBOC)", "n"),
    "9F7A": ("VLP Terminal Support Indicator (PBOC)", "b"),
    "A5": ("File Control Information (FCI) Proprietary Template", "var"),
    "BF0C": ("File Control Information (FCI) Issuer Discretionary Data", "var"),
    "DF8116": ("User Interface Request Data (EMV Book C-2)", "b"),
}


def tag_name(tag: str) -> str:
    """The EMV name of ``tag`` (hex, any case), or ``"unknown tag"``."""
    return TAGS.get(tag.upper(), ("unknown tag", "b"))[0]


def tag_format(tag: str) -> str:
    """The Book 3 format of ``tag`` (``b`` when not listed)."""
    return TAGS.get(tag.upper(), ("unknown tag", "b"))[1]
