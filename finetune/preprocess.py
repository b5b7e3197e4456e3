"""Turns collected dialogues into train and held-out chat examples."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from rasa_safe_hybrid.guardrails import Guardrails, pii

from finetune.collect import Dialogue


@dataclass
class Prepared:
    """The split data set and what was dropped on the way (with reasons)."""

    train: List[Dict[str, Any]]
    heldout: List[Dict[str, Any]]
    dropped: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)

    def stats(self) -> Dict[str, Any]:
        return {"train": len(self.train), "heldout": len(self.heldout),
                "dropped": dict(self.dropped), "sources": dict(self.sources)}


def redact(text: str, guardrails: Guardrails) -> str:
    """The input rail's PII redaction (``[EMAIL]``, ``[CREDIT_CARD]``, ...)."""
    verdict = pii.check(text, guardrails.settings.pii_types)
    return verdict.redacted if verdict.triggered else text


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _group(reply: str) -> str:
    return hashlib.sha256(_key(reply).encode()).hexdigest()


def preprocess(
    dialogues: Sequence[Dialogue],
    guardrails: Guardrails,
    system_prompt: str,
    history_turns: int = 4,
    heldout_fraction: float = 0.15,
    seed: int = 13,
    max_examples: int = 0,
) -> Prepared:
    """Redacts, filters, deduplicates, formats and splits.

    - user text and history: PII redacted with the input rail's code;
    - a reply that contains PII is dropped, not redacted: the model must not
      learn to write placeholders or contact details;
    - turns a guardrail blocked (marked so by the collector, or that an input
      rail blocks now), and replies the output rails would replace, are dropped;
    - duplicates (same user text and reply, ignoring case and punctuation) go;
    - the split is by reply (all examples with one reply on the same side), so
      held-out replies were never seen in training; fixed seed.
    """
    dropped: Counter = Counter()
    seen = set()
    kept: List[Tuple[Dialogue, str, List[Dict[str, str]]]] = []
    for dialogue in dialogues:
        if dialogue.blocked:
            dropped["blocked by a guardrail"] += 1
            continue
        if not dialogue.user.strip() or not dialogue.reply.strip():
            dropped["empty"] += 1
            continue
        if pii.find_pii(dialogue.reply, guardrails.settings.pii_types):
            dropped["reply contains PII"] += 1
            continue
        # the LLM never sees a turn an input rail blocks; on a grounded turn the rails read the
        # user's question, and the passages around it are the corpus's text, sent as they are
        if guardrails.check_input(dialogue.question or dialogue.user).decisive:
            dropped["blocked by a guardrail"] += 1
            continue
        user = dialogue.user.strip() if dialogue.question else redact(dialogue.user.strip(), guardrails)
        if guardrails.check_output(dialogue.reply, dialogue.question or user, system_prompt).decisive:
            dropped["reply fails an output rail"] += 1
            continue
        key = (_key(user), _key(dialogue.reply))
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        history = [{"role": t["role"], "content": redact(t["content"], guardrails)}
                   for t in dialogue.history[-history_turns:]] if history_turns else []
        kept.append((dialogue, user, history))

    kept.sort(key=lambda item: (item[0].source, _key(item[0].user), _key(item[0].reply)))
    if max_examples and len(kept) > max_examples:
        kept = random.Random(seed).sample(kept, max_examples)
        kept.sort(key=lambda item: (item[0].source, _key(item[0].user), _key(item[0].reply)))

    groups = sorted({_group(d.reply) for d, _, _ in kept})
    random.Random(seed).shuffle(groups)
    n_heldout = max(1, round(len(groups) * heldout_fraction)) if len(groups) > 1 else 0
    heldout_groups = set(groups[:n_heldout])
    prepared = Prepared([], [], dropped)
    for dialogue, user, history in kept:
        example = {
            "messages": [{"role": "system", "content": system_prompt}, *history,
                         {"role": "user", "content": user},
                         {"role": "assistant", "content": dialogue.reply.strip()}],
            "source": dialogue.source,
        }
        (prepared.heldout if _group(dialogue.reply) in heldout_groups else prepared.train).append(example)
        prepared.sources[dialogue.source.split(":")[0]] += 1
    return prepared


def render(examples: Sequence[Dict[str, Any]], tokenizer: Any) -> List[Dict[str, Any]]:
    """Adds the chat-template text each example trains on (for inspection)."""
    return [{**e, "text": tokenizer.apply_chat_template(e["messages"], tokenize=False)} for e in examples]


def write_jsonl(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
