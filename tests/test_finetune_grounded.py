"""Grounded fine-tuning examples: built from corpus entries, held-out entries left out, the
prompt the LLM action sends, provenance on every line (the tiny corpus, no model)."""

from __future__ import annotations

import json

from rasa_safe_hybrid.retrieval import corpora
from rasa_safe_hybrid.retrieval.answer import PROMPT

from finetune import collect, grounded
from tests.conftest import ROOT

TINY = ROOT / "tests" / "data" / "corpora"


def entries():
    return [e for c in corpora.CORPORA.values() for e in c.read(TINY)]


def test_examples_restate_the_passage_in_the_prompt_the_action_sends():
    examples = grounded.build(entries(), excluded=set(), count=50, seed=1)
    assert examples
    for example in examples:
        assert example["prompt"].startswith(PROMPT.split("{facts}")[0])
        assert example["prompt"].endswith(f"Question: {example['question']}")
        origin = example["provenance"]["answers_from"]
        assert origin is None or origin == example["provenance"]["passages"][0]
    kangaroo = next(e for e in examples if e["provenance"]["answers_from"] == "wordnet:n01877134")
    assert kangaroo["answer"].startswith("A kangaroo is any of several herbivorous leaping marsupials")


def test_an_entry_named_in_a_held_out_question_is_never_used():
    held_out = grounded.held_out_words()
    assert {"kangaroo", "hamlet", "shakespeare"} <= held_out  # knowledge_questions.yml asks about them
    used = {e["provenance"]["answers_from"] for e in grounded.build(entries(), held_out, 50, 1)}
    assert not used & {"wordnet:n01877134", "wordnet:n09599891", "wordnet:n11295196"}


def test_the_committed_examples_leave_the_held_out_entries_out_and_say_where_they_come_from():
    rows = [json.loads(line) for line in (ROOT / "finetune/data/grounded.jsonl").read_text().splitlines()]
    held_out = grounded.held_out_words()
    assert len(rows) == 420 and sum(r["answer"] == grounded.DONT_KNOW for r in rows) == 60
    for row in rows:
        assert row["provenance"]["corpus"] in ("wordnet", "foldoc") and row["provenance"]["passages"]
        head = row["prompt"].split("\n- ", 1)[1].split(":")[0].split(" (")[0]
        if row["provenance"]["answers_from"]:
            assert not set(grounded.words(head)) & held_out, row["question"]


def test_the_collector_keeps_the_question_for_the_rails():
    dialogues = collect.collect_grounded()
    assert len(dialogues) == 420 and all(d.question and d.user.endswith(d.question) for d in dialogues)
