"""PII detection and redaction: emails, phones, cards (Luhn), IBANs (mod 97),
national ids, IP addresses and street addresses.

Detection is pattern-based with checksums where the format has one, so it is
fast (well under a millisecond per message) and explainable. Names of people
are not detected (that needs a named-entity model); see the README.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Pattern, Sequence, Tuple

from rasa_safe_hybrid.guardrails.verdict import Verdict, clean

RAIL = "pii"
LEAK_RAIL = "pii_leak"

EMAIL = "EMAIL"
PHONE = "PHONE"
CREDIT_CARD = "CREDIT_CARD"
IBAN = "IBAN"
NATIONAL_ID = "NATIONAL_ID"
IP_ADDRESS = "IP_ADDRESS"
STREET_ADDRESS = "STREET_ADDRESS"
ALL_TYPES = (EMAIL, CREDIT_CARD, IBAN, NATIONAL_ID, IP_ADDRESS, PHONE, STREET_ADDRESS)

_STREET_WORDS = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|"
    r"Place|Pl|Terrace|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Alley|"
    r"Crescent|Close|Row|Walk|Plaza|Mall|Port|Pass|Loop|Ridge|Park|Gardens|Hill|"
    r"Strasse|Straße|Str|Gasse|Weg|Platz|Allee|Rue|Via|Calle|Katu|Gatan|Vej|Vei|Laan|Ramp|Spur"
)

PATTERNS: Dict[str, Pattern] = {
    EMAIL: re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    CREDIT_CARD: re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
    IBAN: re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b"),
    NATIONAL_ID: re.compile(
        # US SSN; UK National Insurance number
        r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"
        r"|\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
    ),
    IP_ADDRESS: re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"),
    PHONE: re.compile(
        r"(?<![\w+])(?:\+|00)?\d{0,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}[ .-]?\d{2,4}[ .-]?\d{2,5}"
        r"(?:[ .-]?\d{1,4})?(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)"
    ),
    STREET_ADDRESS: re.compile(
        rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[A-Za-zÀ-ÿ'.-]+\s+){{0,4}}(?:{_STREET_WORDS})\b\.?"
        r"(?:,?\s*(?:Apt\.?|Suite|Unit|#)\s*\d+\w?)?"
        rf"|\b(?:[A-Za-zÀ-ÿ'.-]+\s+){{0,3}}(?:{_STREET_WORDS})\s+\d{{1,5}}[A-Za-z]?\b"
        r"|\b(?:Apt\.?|Suite|Unit)\s*\d+\w?\b"
    ),
}
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """The ISO 13616 mod-97 check of IBANs."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _accept(kind: str, value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if kind == CREDIT_CARD:
        return 13 <= len(digits) <= 19 and luhn_ok(digits)
    if kind == IBAN:
        return iban_ok(value)
    if kind == PHONE:  # dates and year ranges ("2018-2019") are not phone numbers
        return MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS and not re.fullmatch(
            r"\d{4}-\d{2}-\d{2}", value.strip()) and not _year_range(value.strip())
    return True


def _year_range(value: str) -> bool:
    """A span of years, as reference texts write lives and reigns ("1564-1616", "1887 - 1969")."""
    match = re.fullmatch(r"(\d{3,4})\s?[-–/]\s?(\d{3,4})", value)
    return match is not None and 100 <= int(match.group(1)) < int(match.group(2)) <= 2100


def find_pii(text: str, types: Sequence[str] = ALL_TYPES) -> List[Dict[str, object]]:
    """Finds PII spans; earlier types in ``ALL_TYPES`` win overlaps."""
    taken: List[Tuple[int, int]] = []
    found: List[Dict[str, object]] = []
    for kind in ALL_TYPES:
        if kind not in types:
            continue
        for match in PATTERNS[kind].finditer(text):
            start, end = match.span()
            value = match.group(0).rstrip(" .-")
            end = start + len(value)
            if not value or not _accept(kind, value):
                continue
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            found.append({"type": kind, "start": start, "end": end, "value": value})
    return sorted(found, key=lambda f: int(str(f["start"])))


def redact(text: str, findings: List[Dict[str, object]], placeholder: str = "[{type}]") -> str:
    """Replaces each finding by a placeholder such as ``[EMAIL]``."""
    out, last = [], 0
    for f in findings:
        out.append(text[last : int(str(f["start"]))])
        out.append(placeholder.format(type=f["type"]))
        last = int(str(f["end"]))
    out.append(text[last:])
    return "".join(out)


def check(text: str, types: Sequence[str] = ALL_TYPES, placeholder: str = "[{type}]") -> Verdict:
    """Detects PII and returns the redacted text in the verdict."""
    findings = find_pii(text, types)
    if not findings:
        return clean(RAIL)
    kinds = sorted({str(f["type"]) for f in findings})
    return Verdict(
        rail=RAIL,
        triggered=True,
        reason=f"found {', '.join(kinds)}",
        category=kinds[0],
        redacted=redact(text, findings, placeholder),
        findings=findings,
    )


def new_pii(reply: str, given: str, types: Sequence[str] = ALL_TYPES) -> Optional[Verdict]:
    """Output side: PII in ``reply`` that does not appear in what the user gave."""
    given_values = {re.sub(r"\W", "", str(f["value"])).lower() for f in find_pii(given, types)}
    leaked = [
        f for f in find_pii(reply, types)
        if re.sub(r"\W", "", str(f["value"])).lower() not in given_values
    ]
    if not leaked:
        return None
    kinds = sorted({str(f["type"]) for f in leaked})
    return Verdict(
        rail=LEAK_RAIL, triggered=True, reason=f"reply contains {', '.join(kinds)} the user did not give",
        category=kinds[0], redacted=redact(reply, leaked), findings=leaked,
    )
