"""Checks only the output side needs: degenerate replies and prompt leaks."""

from __future__ import annotations

import re
from typing import Set

from rasa_safe_hybrid.guardrails.verdict import Verdict, clean

DEGENERATE = "degenerate"
PROMPT_LEAK = "prompt_leak"

_TEMPLATE = re.compile(r"<\|[a-z_]+\|>|^\s*(system|assistant|user)\s*:|\[/?INST\]", re.I | re.M)
# Fill-in-the-blank placeholders such as "[card_name]" or "[your name]".
_PLACEHOLDER = re.compile(r"\[(?:[a-z]+[ _]){0,3}[a-z]+\]|\{\{?\s*\w+\s*\}?\}", re.I)
_WORD = re.compile(r"[A-Za-z']+")
# Common English function words: a reply of several words with none of these
# is not English (the small model sometimes switches to French).
_ENGLISH = frozenset(
    "the a an and or but to of in on at for with is are was were be been it this that "
    "you your i we they he she my our can will would should could do does not no yes "
    "if as by from so what how why when which who there here have has had about more "
    "than then also just all any some one may might take every each day days hour hours "
    "please help need get make like well good very most many much time".split()
)
_FOREIGN = frozenset(
    "le la les des est une et du dans pour que qui pas sont avec der die das und ist "
    "nicht ein eine el los las es y por para con una del".split()
)
_LEAK_PHRASES = re.compile(
    r"\b(my|the) (system )?(prompt|instructions)\b|\bi (was|am|have been) "
    r"(told|instructed|programmed|prompted) to\b|\bsystem prompt\b",
    re.I,
)


def degenerate(text: str, min_chars: int = 2, max_repeat_ratio: float = 0.5) -> Verdict:
    """Empty, template tokens left over, repeated, or not English."""
    stripped = text.strip()
    if len(stripped) < min_chars:
        return Verdict(DEGENERATE, True, "empty reply", category="empty")
    if _TEMPLATE.search(stripped):
        return Verdict(DEGENERATE, True, "template tokens or role markers", category="template")
    if _PLACEHOLDER.search(stripped):
        return Verdict(DEGENERATE, True, "unfilled placeholder", category="placeholder")
    words = [w.lower() for w in _WORD.findall(stripped)]
    if not words:
        return Verdict(DEGENERATE, True, "no words", category="empty")
    if len(words) >= 12 and len(set(words)) / len(words) < 1 - max_repeat_ratio:
        return Verdict(DEGENERATE, True, "repetitive reply", category="repeated")
    if len(words) >= 6:
        english = sum(w in _ENGLISH for w in words)
        foreign = sum(w in _FOREIGN for w in words)
        letters = [c for c in stripped if c.isalpha()]
        ascii_share = sum(c.isascii() for c in letters) / max(1, len(letters))
        if english == 0 or foreign > english or ascii_share < 0.9:
            return Verdict(DEGENERATE, True, "not English", category="language")
    return clean(DEGENERATE)


def _shingles(text: str, n: int) -> Set[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def prompt_leak(text: str, system_prompt: str, shingle: int = 7) -> Verdict:
    """The reply repeats the system prompt or talks about its instructions."""
    if system_prompt and _shingles(text, shingle) & _shingles(system_prompt, shingle):
        return Verdict(PROMPT_LEAK, True, f"repeats {shingle}+ words of the system prompt", category="copy")
    match = _LEAK_PHRASES.search(text)
    if match:
        return Verdict(PROMPT_LEAK, True, f"mentions '{match.group(0)}'", category="mention")
    return clean(PROMPT_LEAK)
