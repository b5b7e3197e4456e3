"""The prompt every backend sends and the post-processing every reply gets."""

from __future__ import annotations

import re
from typing import Dict, List

from rasa_safe_hybrid.generation.settings import DEFAULT_SYSTEM_PROMPT, GenerationSettings

__all__ = ["DEFAULT_SYSTEM_PROMPT", "build_messages", "postprocess"]

# Chat-template markers and role prefixes the reply must never contain.
_TEMPLATE_TOKENS = re.compile(r"<\|[a-zA-Z_]+\|>|</?s>|\[/?INST\]")
_ROLE_PREFIX = re.compile(r"^\s*(assistant|system|user|bot|human)\s*:\s*", re.I | re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def build_messages(
    settings: GenerationSettings, history: List[Dict[str, str]], user_text: str
) -> List[Dict[str, str]]:
    """System prompt + the last ``history_turns`` messages + the user's message."""
    turns = history[-settings.history_turns :] if settings.history_turns else []
    return [
        {"role": "system", "content": settings.system_prompt},
        *turns,
        {"role": "user", "content": user_text},
    ]


def postprocess(raw: str, max_chars: int, complete: bool) -> str:
    """Cleans a raw generation into a reply a user may see.

    Strips template tokens and role markers, drops repeated sentences, cuts an
    unfinished last sentence (when generation hit its length limit) and caps
    the length at a sentence boundary. May return ``""``; callers must not send
    an empty reply.

    Args:
        raw: decoded model output.
        max_chars: length cap.
        complete: whether the model stopped by itself (stop token) rather than
            by the length or time limit.
    """
    text = _TEMPLATE_TOKENS.split(raw)[0] if _TEMPLATE_TOKENS.search(raw) else raw
    text = _ROLE_PREFIX.sub("", text)
    text = " ".join(text.split())
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    if sentences and not complete and not re.search(r"[.!?][\"')\]]*$", sentences[-1]):
        sentences = sentences[:-1] or sentences  # keep a lone fragment rather than nothing
    seen, kept = set(), []
    for sentence in sentences:
        key = re.sub(r"\W+", " ", sentence.lower()).strip()
        if not re.search(r"[A-Za-z]{2,}", sentence):  # a bare list number such as "3."
            continue
        if key and key not in seen:
            seen.add(key)
            kept.append(sentence)
    reply = ""
    for sentence in kept:
        candidate = f"{reply} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        reply = candidate
    if not reply and kept:
        reply = kept[0][:max_chars].rsplit(" ", 1)[0]
    reply = re.sub(r":\s*\d{1,2}\.$", ":", reply)  # a list that was cut after "1."
    return reply[:-1] + "." if reply.endswith(":") else reply
