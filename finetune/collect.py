"""Collects training dialogues from the project and, optionally, the tracker store."""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml
from rasa_safe_hybrid.guardrails import RailsRecord

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
OPEN_QA = ROOT / "knowledge" / "open_qa.yml"
GROUNDED = ROOT / "finetune" / "data" / "grounded.jsonl"
# Replies reviewers rated good or corrected on the review page (`make review-export` writes it).
REVIEWED = ROOT / "finetune" / "data" / "reviewed.jsonl"
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
# Intents whose answers are not the assistant's open voice (set by rails or escalations).
SKIP_INTENT_PREFIXES = ("guardrail_", "emergency")


@dataclass
class Dialogue:
    """One assistant reply with what led to it."""

    user: str
    reply: str
    source: str
    history: List[Dict[str, str]] = field(default_factory=list)
    blocked: Optional[str] = None  # why a guardrail blocked this turn, if it did
    question: Optional[str] = None  # a grounded turn: the user's question inside ``user`` (the prompt)


def _text_responses(domain: Dict[str, Any]) -> Dict[str, str]:
    """Responses with a single fixed text (no slot placeholders, no buttons needed)."""
    texts = {}
    for name, variations in (domain.get("responses") or {}).items():
        variation = (variations or [{}])[0]
        text = variation.get("text") if isinstance(variation, dict) else None
        if text and not _PLACEHOLDER.search(text):
            texts[name] = text.strip()
    return texts


def _examples(nlu_dir: Path) -> Dict[str, List[str]]:
    """Intent -> example texts (entity annotations removed), read by Rasa's own loader."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(nlu_dir))
    examples: Dict[str, List[str]] = {}
    for message in data.intent_examples:
        examples.setdefault(message.get("intent"), []).append(message.get("text"))
    return examples


def _steps(path: Path, key: str) -> Iterable[List[Dict[str, Any]]]:
    content = yaml.safe_load(path.read_text("utf-8")) or {}
    for item in content.get(key) or []:
        yield item.get("steps") or []


def collect_project(root: Path = ROOT, per_intent: int = 8, seed: int = 13) -> List[Dialogue]:
    """Domain responses paired with NLU examples, and stories as dialogues."""
    rng = random.Random(seed)
    domain = yaml.safe_load((root / "domain.yml").read_text("utf-8"))
    texts = _text_responses(domain)
    examples = _examples(root / "data" / "nlu")
    dialogues: List[Dialogue] = []

    pairs = set()
    for source, key in (("rules.yml", "rules"), ("stories.yml", "stories")):
        for steps in _steps(root / "data" / source, key):
            if any("active_loop" in s or "slot_was_set" in s for s in steps):
                continue
            for step, following in zip(steps, steps[1:], strict=False):
                intent, action = step.get("intent"), following.get("action")
                if intent and action in texts and not intent.startswith(SKIP_INTENT_PREFIXES):
                    pairs.add((intent, action))
    for intent, action in sorted(pairs):
        pool = sorted(examples.get(intent, []))
        for text in rng.sample(pool, min(per_intent, len(pool))):
            dialogues.append(Dialogue(text, texts[action], "responses"))

    for steps in _steps(root / "data" / "stories.yml", "stories"):
        history: List[Dict[str, str]] = []
        pending: Optional[str] = None
        for step in steps:
            if "intent" in step:
                if step["intent"].startswith(SKIP_INTENT_PREFIXES) or not examples.get(step["intent"]):
                    break
                pending = rng.choice(sorted(examples[step["intent"]]))
            elif "action" in step and pending is not None:
                if step["action"] in texts:
                    dialogues.append(Dialogue(pending, texts[step["action"]], "stories", list(history)))
                    history += [{"role": "user", "content": pending},
                                {"role": "assistant", "content": texts[step["action"]]}]
                else:  # a custom action or form: its text depends on data, so the history ends here
                    history = []
                pending = None
    return dialogues


def collect_open_qa(path: Path = OPEN_QA) -> List[Dialogue]:
    """The curated open-ended Q&A the project ships."""
    content = yaml.safe_load(path.read_text("utf-8")) or {}
    return [Dialogue(str(item["question"]).strip(), str(item["answer"]).strip(), f"open_qa:{item.get('domain')}")
            for item in content.get("qa") or []]


def collect_grounded(path: Path = GROUNDED) -> List[Dialogue]:
    """Grounded question-passage-answer examples (``python -m finetune.grounded`` writes them):
    the prompt a grounded turn sends, and a one-sentence answer from its passages."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [Dialogue(row["prompt"], row["answer"], f"grounded:{row['provenance']['corpus']}", question=row["question"])
            for row in rows]


def collect_reviewed(path: Path = REVIEWED) -> List[Dialogue]:
    """Open turns whose reply reviewers rated good, or corrected (``make review-export`` writes them)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [Dialogue(row["question"], row["answer"], f"reviewed:{row['provenance']['rating']}") for row in rows]


def _epoch(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def collect_tracker(
    url: str, since: Optional[str] = None, until: Optional[str] = None, trace_slot: Optional[str] = "llm_trace"
) -> List[Dialogue]:
    """Conversations from a SQL tracker store (``sqlite:///var/tracker.db``,
    ``postgresql://user:pw@host/db``) between ``since`` and ``until`` (ISO dates).

    Each user message with the bot messages that followed it is one dialogue,
    with the earlier turns as history. Turns an input rail decided, and LLM
    turns whose reply an output rail replaced, are marked ``blocked``.
    """
    import sqlalchemy as sa

    low, high = _epoch(since), _epoch(until)
    engine = sa.create_engine(url)
    query = "SELECT sender_id, type_name, timestamp, data FROM events"
    conditions, params = [], {}
    if low is not None:
        conditions.append("timestamp >= :low")
        params["low"] = low
    if high is not None:
        conditions.append("timestamp < :high")
        params["high"] = high
    if conditions:
        query += " WHERE " + " AND ".join(conditions)
    query += " ORDER BY sender_id, id"
    with engine.connect() as connection:
        rows = connection.execute(sa.text(query), params).fetchall()
    engine.dispose()

    by_sender: Dict[str, List[Dict[str, Any]]] = {}
    for sender, kind, _, data in rows:
        event = json.loads(data)
        event["event"] = event.get("event") or kind
        by_sender.setdefault(sender, []).append(event)

    dialogues: List[Dialogue] = []
    for events in by_sender.values():
        history: List[Dict[str, str]] = []
        current: Optional[Dialogue] = None
        for event in events:
            if event["event"] == "user":
                _close_turn(current, history, dialogues)
                current = _user_turn(event, history)
            elif event["event"] == "bot" and current is not None and event.get("text"):
                current.reply = f"{current.reply} {event['text']}".strip()
            elif (event["event"] == "slot" and current is not None and trace_slot and event.get("name") == trace_slot
                  and str((event.get("value") or {}).get("outcome", "")).startswith("replaced")):
                current.blocked = f"output rail ({event['value']['outcome']})"
        _close_turn(current, history, dialogues)
    logger.info(f"Collected {len(dialogues)} turns from the tracker store.")
    return dialogues


def _user_turn(event: Dict[str, Any], history: List[Dict[str, str]]) -> Dialogue:
    """A new turn from a stored user event, marked when a guardrail decided it."""
    parse = event.get("parse_data") or {}
    rails = RailsRecord.from_parse_data(parse)
    intent = (parse.get("intent") or {}).get("name") or ""
    blocked = None
    if rails is not None and rails.decisive:
        blocked = f"input rail {rails.decisive.rail}"
    elif intent.startswith("guardrail_"):
        blocked = f"intent {intent}"
    return Dialogue(event.get("text") or "", "", "tracker", list(history[-8:]), blocked)


def _close_turn(turn: Optional[Dialogue], history: List[Dict[str, str]], dialogues: List[Dialogue]) -> None:
    """Keeps a finished turn; an unblocked one becomes history for the next turns."""
    if turn is None or not turn.reply:
        return
    dialogues.append(turn)
    if not turn.blocked:  # a blocked turn never becomes context for later ones
        history.extend([{"role": "user", "content": turn.user}, {"role": "assistant", "content": turn.reply}])
