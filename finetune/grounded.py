"""Grounded question-passage-answer examples for `make finetune`, built from the reference corpora.

``python -m finetune.grounded`` writes ``finetune/data/grounded.jsonl``: each line
a question, the passages the model is shown (the one that answers it first, at
times a distractor beside it), the answer, and where all of it came from (corpus,
passage ids, template). The questions are made from templates ("what is a {word}?",
"who was {name}?", "what is the capital of {country}?"); the answer restates the
passage in one sentence ("A harp is a chordophone that has a triangular frame ...");
some examples pair a question with a passage that does not answer it, and the
answer says so. The prompt is the one the LLM action sends on a grounded turn
(``rasa_safe_hybrid.retrieval.answer.PROMPT``), so the model learns the task it is given.

Held out: an entry whose word or name appears in any question of
``benchmarks/data/knowledge_questions.yml`` or ``knowledge_dev.yml`` is never used,
so what the knowledge section of ``make eval`` measures was never trained on.
Fixed seed; the file is committed (a clone without the corpora can still fine-tune).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set

import yaml
from rasa_safe_hybrid.retrieval.answer import PROMPT
from rasa_safe_hybrid.retrieval.corpora import Entry, available, read_manifest
from rasa_safe_hybrid.retrieval.index import words

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "finetune" / "data" / "grounded.jsonl"
HELD_OUT = (
    ROOT / "benchmarks" / "data" / "knowledge_questions.yml",
    ROOT / "benchmarks" / "data" / "knowledge_dev.yml",
)
DONT_KNOW = "I don't know: the sources I have don't say."
CATEGORIES = ("noun.animal", "noun.artifact", "noun.food", "noun.plant", "noun.location", "noun.person")
THING_TEMPLATES = ("what is {a} {w}?", "what's {a} {w}", "can you tell me what {a} {w} is?", "what does {w} mean?",
                   "define {w}", "explain what {a} {w} is")
PERSON_TEMPLATES = ("who was {w}?", "who is {w}", "tell me who {w} was")
COMPUTING_TEMPLATES = ("what is {w} in computing?", "what is {w}?", "explain {w}")


def held_out_words(paths: Iterable[Path] = HELD_OUT) -> Set[str]:
    """Every content word of the held-out and development questions."""
    found: Set[str] = set()
    for path in paths:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        for items in data.values():
            for item in items or []:
                found.update(words(item["q"] if isinstance(item, dict) else str(item)))
    return found


def article(word: str) -> str:
    lowered = word.lower()
    vowel = lowered[:1] in "aeiou" and not lowered.startswith(("uni", "use", "usu", "eu", "one", "united"))
    return "an" if vowel else "a"


def sentence(subject: str, definition: str, person: bool) -> str:
    """The passage's definition said as one sentence about ``subject``."""
    first = re.split(r";", definition, maxsplit=1)[0].strip().rstrip(".")
    first = re.sub(r'^\((Or|or|Also|also) [^)]*\)\s*', "", first)  # FOLDOC's '(Or "robot")'
    if re.match(r"^[A-Z]( ?[a-z])", first) and not person:  # FOLDOC's "A program that ...", "Use of ..."
        first = first[0].lower() + first[1:]
    if person:
        return f"{subject} was {article(first)} {first}."
    if re.match(r"^(a|an|the|any|one|some)\b", first, re.I):
        return f"{article(subject).capitalize()} {subject} is {first}."
    return f"{article(subject).capitalize()} {subject} is {article(first)} {first}."


def _definition(passage_text: str) -> str:
    """The definition part of a corpus passage ("harp: a chordophone ...; ..." -> "a chordophone ...")."""
    body = passage_text.split(": ", 1)[1] if ": " in passage_text else passage_text
    body = re.sub(r"^\((\w[\w ,-]*)\)\s*", "", body)  # FOLDOC's "(programming, tool)"
    return re.split(r"\.\s+(\S[^.]*? is (a kind|an instance) of |It is part of |Kinds: )", body)[0].rstrip(". ")


def build(entries: List[Entry], excluded: Set[str], count: int, seed: int) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    pool = []
    for entry in entries:
        passage = entry.passage
        head = passage.title.split(" (")[0]
        person = entry.category == "noun.person"
        if not entry.first_sense or (entry.category not in CATEGORIES and entry.category != "computing"):
            continue
        if passage.health or set(words(head)) & excluded or not 3 <= len(head) <= 30:
            continue
        if person != head[:1].isupper() or (not person and entry.category != "computing" and head != head.lower()):
            continue
        definition = _definition(passage.text)
        if not 20 <= len(definition) <= 220:
            continue
        pool.append((entry, head, definition, person))
    rng.shuffle(pool)
    examples = []
    for i, (entry, head, definition, person) in enumerate(pool[:count]):
        templates = PERSON_TEMPLATES if person else (
            COMPUTING_TEMPLATES if entry.category == "computing" else THING_TEMPLATES)
        template = rng.choice(templates)
        question = template.format(w=head, a=article(head))
        distractor = pool[(i + 1 + rng.randrange(len(pool) - 1)) % len(pool)][0].passage if len(pool) > 1 else None
        if i % 7 == 6 and distractor is not None:  # the passage shown does not answer the question: say so
            passages, answer = [distractor], DONT_KNOW
        else:
            passages = [entry.passage] + ([distractor] if i % 3 == 0 and distractor is not None else [])
            answer = sentence(head if person or entry.category == "computing" else head.lower(), definition, person)
        facts = "\n".join(f"- {p.text}" for p in passages)
        examples.append({"question": question, "prompt": PROMPT.format(facts=facts, question=question),
                         "answer": answer, "provenance": {
                             "corpus": entry.passage.kind, "passages": [p.id for p in passages],
                             "template": template, "answers_from": entry.passage.id if answer != DONT_KNOW else None}})
    return examples


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=420)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    usable, refused = available(read_manifest(ROOT / "knowledge" / "corpora.yml"))
    for name, reason in refused.items():
        print(f"corpus {name}: not used: {reason}", file=sys.stderr)
    if not usable:
        print("error: no reference corpus is installed (make corpora)", file=sys.stderr)
        return 2
    entries = [e for pin in usable for e in pin.corpus.read(pin.corpus.root)]
    examples = build(entries, held_out_words(), args.count, args.seed)
    args.out.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples), "utf-8")
    kinds: Dict[str, int] = {}
    for e in examples:
        kinds[e["provenance"]["corpus"]] = kinds.get(e["provenance"]["corpus"], 0) + 1
    print(f"{len(examples)} grounded examples ({kinds}; "
          f"{sum(e['answer'] == DONT_KNOW for e in examples)} that say the passage does not answer) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
