"""Turns reviewers' ratings into training and test data (``make review-export``).

Writes, each file whole from every rating so far (running it twice writes the same):

- corrected intents -> ``data/nlu/reviewed.yml`` (an NLU file ``rasa data validate`` accepts);
- conversations whose every rating says it went right -> ``tests/reviewed_stories.yml`` (test stories);
- good model replies and corrected replies of open turns -> ``finetune/data/reviewed.jsonl``
  (``make finetune`` reads it);
- rail false alarms and misses -> ``finetune/data/guards/reviewed.tsv``
  (``make train-guards`` trains on it as the project's own rows: never in a held-out split).

Prints what it wrote and, for everything it left out, why.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml
from rasa.shared.nlu.training_data.entities_parser import replace_entities

# A redacted placeholder ([EMAIL], [PHONE], ...): an example with one would teach the placeholder.
PLACEHOLDER = re.compile(r"\[[A-Z_]{3,}\]")
# The rail -> the learned head its reviewed rows train (a pattern rail's rows train the head of its kind).
RAIL_HEADS = {
    "attack_classifier": "attack", "injection": "attack",
    "harmful_classifier": "harmful", "harmful": "harmful",
    "hateful_classifier": "hateful",
    "medical_advice_classifier": "medical_advice", "medical_advice": "medical_advice",
    "emergency_classifier": "emergency", "emergency_classifier_strict": "emergency", "emergency": "emergency",
    "emergency_words": "emergency",
}
# Rails that are the NLU's intent: a reviewer corrects the turn's intent instead (the NLU file trains it).
INTENT_RAILS = {"emergency_intent"}
NOT_AN_EXAMPLE_INTENTS = ("guardrail_",)  # set by InputRails when a rail fires; they have no NLU examples


@dataclass
class Outcome:
    """What one export wrote and what it left out (with the reason)."""

    written: Dict[str, int] = field(default_factory=dict)
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (what, why)

    def skip(self, what: str, why: str) -> None:
        """Records one thing left out and why."""
        self.skipped.append((what, why))

    def lines(self) -> List[str]:
        """What was written and skipped, for printing."""
        out = [f"wrote {path}: {count} item(s)" for path, count in self.written.items()]
        reasons = Counter(why for _, why in self.skipped)
        out += [f"skipped {count}: {why}" for why, count in reasons.most_common()]
        out += [f"  - {what}: {why}" for what, why in self.skipped[:50]]
        if len(self.skipped) > 50:
            out.append(f"  ... and {len(self.skipped) - 50} more")
        return out


def _majority(values: Iterable[str]) -> Optional[str]:
    """The value most reviewers gave, None on a tie between the top two."""
    counts = Counter(values).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _turn_key(row: Dict[str, Any]) -> str:
    return f"{row['conversation_id']} turn {row['turn']}"


def existing_examples(nlu_dir: Path, skip: Path) -> Dict[str, str]:
    """Every NLU example text under ``nlu_dir`` (lower-cased) -> its intent, leaving out ``skip``."""
    known: Dict[str, str] = {}
    for path in sorted(nlu_dir.glob("**/*.yml")):
        if path.resolve() == skip.resolve():
            continue
        for block in (yaml.safe_load(path.read_text("utf-8")) or {}).get("nlu") or []:
            for line in str(block.get("examples") or "").splitlines():
                if line.strip().startswith("- ") and block.get("intent"):
                    known[replace_entities(line.strip()[2:]).strip().lower()] = block["intent"]
    return known


def nlu_examples(rows: List[Dict[str, Any]], known: Dict[str, str], intents: Iterable[str],
                 outcome: Outcome) -> Dict[str, List[str]]:
    """Intent -> example texts, from the intent ratings (the reviewers' majority per turn)."""
    domain_intents = set(intents)
    by_turn: Dict[Tuple[str, int], List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["target"] == "intent":
            by_turn[(row["conversation_id"], row["turn"])].append(row)
    examples: Dict[str, List[str]] = defaultdict(list)
    seen = set()
    for (_, _), group in sorted(by_turn.items()):
        what = _turn_key(group[0])
        intent = _majority(r["rating"] for r in group)
        text = " ".join(str(group[0]["user_text"] or "").split())
        if intent is None:
            outcome.skip(what, "reviewers disagree on the intent")
        elif intent not in domain_intents:
            outcome.skip(what, f"'{intent}' is no longer an intent of the domain")
        elif intent.startswith(NOT_AN_EXAMPLE_INTENTS):
            outcome.skip(what, f"'{intent}' is set by a rail, not learned: rate the rail instead")
        elif not text or text.startswith("/"):
            outcome.skip(what, "no text (a button payload or an empty message)")
        elif PLACEHOLDER.search(text):
            outcome.skip(what, "the stored text is redacted ([EMAIL], ...): not a training example")
        elif text.lower() in seen:
            outcome.skip(what, "the same text is already exported")
        elif text.lower() in known:
            outcome.skip(what, f"already an example of '{known[text.lower()]}' in data/")
        else:
            seen.add(text.lower())
            examples[intent].append(text)
    return dict(examples)


def nlu_yaml(examples: Dict[str, List[str]]) -> str:
    """The NLU file text (Rasa's 3.1 format)."""
    blocks = []
    for intent in sorted(examples):
        lines = "".join(f"    - {text}\n" for text in examples[intent])
        blocks.append(f"- intent: {intent}\n  examples: |\n{lines}")
    header = (
        "# Written by `python -m rasa_safe_hybrid.review export` from reviewers' intent corrections; do not "
        "edit by hand\n"
        "# (a correction made on the review page survives the next export, an edit here does not).\n"
    )
    return header + 'version: "3.1"\nnlu:\n' + "".join(blocks)


def finetune_rows(rows: List[Dict[str, Any]], outcome: Outcome) -> List[Dict[str, Any]]:
    """Fine-tuning examples: replies of open turns rated good (the model's own words) or corrected."""
    out: List[Dict[str, Any]] = []
    by_turn: Dict[Tuple[str, int], List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["target"] == "reply":
            by_turn[(row["conversation_id"], row["turn"])].append(row)
    for (conversation, turn), group in sorted(by_turn.items()):
        what = _turn_key(group[0])
        question = " ".join(str(group[0]["user_text"] or "").split())
        corrected = [r for r in group if r["corrected"]]
        if not question or PLACEHOLDER.search(question):
            outcome.skip(what, "no user text, or a redacted one")
            continue
        if corrected:
            latest = max(corrected, key=lambda r: r["updated_at"])
            answer, kind, reviewer = latest["corrected"], "corrected", latest["reviewer"]
        elif not group[0]["llm_outcome"]:
            outcome.skip(what, "not an open turn (a domain response or a custom action): nothing to fine-tune")
            continue
        elif _majority(r["rating"] for r in group) != "good":
            outcome.skip(what, "the reply is not rated good and has no corrected reply")
            continue
        elif group[0]["llm_outcome"] != "sent":
            outcome.skip(what, f"rated good, but the reply was not the model's own words "
                               f"({group[0]['llm_outcome']}): nothing to learn")
            continue
        else:
            answer, kind, reviewer = (
                str(group[0]["reply"] or ""),
                "good",
                ",".join(sorted(r["reviewer"] for r in group)),
            )
        if PLACEHOLDER.search(answer):
            outcome.skip(what, "the reply holds a redacted placeholder")
            continue
        out.append({"question": question, "answer": answer.strip(),
                    "provenance": {"conversation_id": conversation, "turn": turn, "rating": kind,
                                   "reviewer": reviewer}})
    return out


def guard_rows(rows: List[Dict[str, Any]], outcome: Outcome) -> List[Tuple[str, int, str, str]]:
    """(head, target, reviewer, text): a false alarm is a negative of the rail's head, a miss a positive."""
    out = []
    seen = set()
    for row in rows:
        if row["target"] != "rail" or row["rating"] == "correct":
            continue
        what = f"{_turn_key(row)} {row['rail']} {row['rating']}"
        head = RAIL_HEADS.get(row["rail"])
        text = " ".join(str(row["user_text"] or "").split())
        if row["rail"] in INTENT_RAILS:
            outcome.skip(what, "the NLU's intent: correct the turn's intent instead (data/nlu/reviewed.yml)")
        elif head is None:
            outcome.skip(what, f"'{row['rail']}' checks replies or has no learned head; fix its pattern or list")
        elif not text or PLACEHOLDER.search(text):
            outcome.skip(what, "no user text, or a redacted one")
        elif (head, text.lower()) in seen:
            outcome.skip(what, "the same row is already exported")
        else:
            seen.add((head, text.lower()))
            out.append((head, int(row["rating"] == "missed"), str(row["reviewer"]), text.replace("\t", " ")))
    return out


def story_yaml(stories: List[Tuple[str, str]]) -> str:
    """Test stories (already rendered by Rasa's writer, one per conversation)."""
    header = (
        "# Written by `python -m rasa_safe_hybrid.review export`: conversations reviewers rated as right, to "
        "keep them right.\n"
        "# Run them with `rasa test core --stories tests/reviewed_stories.yml`.\n"
    )
    body = "".join(text for _, text in stories)
    return header + 'version: "3.1"\nstories:\n' + body


def test_story(sender: str, events: List[Any], domain: Any) -> str:
    """One conversation as a test story (user text, intent, actions, slots, forms), Rasa's own writer."""
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.core.training_data.story_writer.yaml_story_writer import YAMLStoryWriter

    tracker = DialogueStateTracker.from_events(sender, events, slots=domain.slots)
    story = tracker.as_story()
    story.story_steps[0].block_name = f"reviewed {sender}"
    text = YAMLStoryWriter().dumps(story.story_steps, is_appendable=True, is_test_story=True)
    return text


def stories(rows: List[Dict[str, Any]], trackers: Dict[str, List[Any]], domain: Any,
            outcome: Outcome) -> List[Tuple[str, str]]:
    """The conversations whose every rating says they went right, as test stories."""
    by_conversation: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_conversation[row["conversation_id"]].append(row)
    out = []
    for conversation, group in sorted(by_conversation.items()):
        wrong = [r for r in group if (r["target"] == "rail" and r["rating"] != "correct")
                 or (r["target"] == "intent" and r["rating"] != r["intent"])]
        if wrong:
            first = wrong[0]
            outcome.skip(f"conversation {conversation}", f"a reviewer found a wrong path (turn {first['turn']}: "
                         f"{first['target']} {first['rating']}): retrain, replay and review it again")
            continue
        events = trackers.get(conversation)
        if not events:
            outcome.skip(f"conversation {conversation}", "no longer in the tracker store")
            continue
        out.append((conversation, test_story(conversation, events, domain)))
    return out
