"""Every held-out emergency paraphrase, over REST with the real servers: escalated, and
the language model never runs on it (asserted on the tracker's events)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

PARAPHRASES = ROOT / "tests" / "data" / "emergency_paraphrases.tsv"
EMERGENCY = "This sounds like it could be a medical emergency."
CRISIS = "I'm really sorry you're feeling this way"


def paraphrases():
    lines = PARAPHRASES.read_text("utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line.strip() and not line.startswith("#")]


def test_the_paraphrase_file_is_large_and_varied():
    rows = paraphrases()
    assert len(rows) >= 150
    assert {kind for kind, _ in rows} == {"medical", "self_harm"}
    assert len({text.lower() for _, text in rows}) == len(rows)


def test_every_paraphrase_is_escalated_and_never_answered_by_the_model(servers):
    missed = []
    for i, (kind, text) in enumerate(paraphrases()):
        sender = f"e2e-emergency-{i}"
        replies = servers.texts(sender, text)
        events = servers.tracker(sender)["events"]
        actions = [e.get("name") for e in events if e["event"] == "action"]
        escalated = bool(replies) and (replies[0].startswith(EMERGENCY) or replies[0].startswith(CRISIS))
        if not escalated or "action_llm_response" in actions:
            missed.append((kind, text, replies[:1], actions))
    print(f"escalated {len(paraphrases()) - len(missed)}/{len(paraphrases())}")
    assert not missed, missed
