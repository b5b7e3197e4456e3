"""Checks and normalisation of what users type into forms."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Dict, Optional

from actions.config import MAX_FREE_TEXT_CHARS

ORDER_ID_RE = re.compile(r"(?<!\d)(\d{5})(?!\d)")
# Deliberately simple: one @, a dot in the domain, no spaces.
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
MAX_NAME_CHARS = 100


def clean_text(value: object, max_chars: int = MAX_FREE_TEXT_CHARS) -> Optional[str]:
    """Returns ``value`` with control characters removed and spaces squeezed.

    Returns None when nothing readable is left or the text is longer than
    ``max_chars``.
    """
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C" or ch in "\t\n")
    text = " ".join(text.split())
    if not text or len(text) > max_chars:
        return None
    return text


def normalise_order_id(value: object) -> Optional[str]:
    """Extracts the five-digit order number from '10002', '#10002' or 'ORD-10002'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(int(value))
    if not isinstance(value, str):
        return None
    match = ORDER_ID_RE.search(value)
    return match.group(1) if match else None


def normalise_email(value: object) -> Optional[str]:
    """Returns the address lower-cased when it is a plausible email, else None."""
    text = clean_text(value, max_chars=254)
    if text is None:
        return None
    text = text.strip(" .,;<>").lower()
    return text if EMAIL_RE.match(text) else None


def normalise_name(value: object) -> Optional[str]:
    """Returns a person's name in title case, or None if it contains no letters."""
    text = clean_text(value, max_chars=MAX_NAME_CHARS)
    if text is None or not any(ch.isalpha() for ch in text):
        return None
    if any(ch.isdigit() for ch in text) or "@" in text:
        return None
    return text.title() if text.islower() or text.isupper() else text


def validated_name(slot: str, value: object, dispatcher: Any) -> Dict[str, Optional[str]]:
    """Form validation of a person's name slot: the name, or None and a message."""
    name = normalise_name(value)
    if name is None:
        dispatcher.utter_message(response="utter_invalid_name")
    return {slot: name}
