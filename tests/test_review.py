"""Conversation review without a server: the turns a stored conversation reads as, the
ratings table, the conversation index (a real SQLite tracker store), sessions, the export
and the human-evaluation figures. The page and its API over HTTP, in Chromium, are in
tests/e2e/test_review.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa_safe_hybrid.guardrails import RailsRecord, Verdict
from rasa_safe_hybrid.review import export as out
from rasa_safe_hybrid.review.store import ReviewError, ReviewStore, check_rating, sql_tracker_store
from rasa_safe_hybrid.review.turns import summary, turns
from rasa_safe_hybrid.stores.redacting_tracker_store import RedactingSQLTrackerStore

from benchmarks.human_eval import cohen_kappa, evaluate
from tests.conftest import ROOT

DOMAIN = Domain.load(str(ROOT / "domain.yml"))
RAILS = ["harmful", "emergency_classifier", "attack_classifier", "toxicity"]


def user(text: str, intent: str, confidence: float = 0.9, fired: List[Verdict] = (), t: float = 0.0) -> UserUttered:
    parse = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": []}
    RailsRecord(verdicts=list(fired), decisive=fired[0] if fired else None).to_parse_data(parse)
    return UserUttered(text, parse["intent"], [], parse, timestamp=t or None)


def llm_turn(text: str, outcome: str = "sent") -> List[Any]:
    return [ActionExecuted("action_llm_response", policy="LLMResponsePolicy", confidence=1.0),
            SlotSet("llm_trace", {"model": "smollm2", "outcome": outcome, "new_tokens": 12, "latency_s": 0.4,
                                  "tokens_per_s": 30}),
            BotUttered(text), ActionExecuted("action_listen")]


def conversation(kind: str, t: float) -> List[Any]:
    """A few conversations of different kinds, as the assistant stores them."""
    events: List[Any] = [ActionExecuted("action_listen", timestamp=t)]
    if kind == "model":
        events += [user("so how do plants actually eat sunlight", "open_question", 0.8, t=t + 1),
                   *llm_turn("Plants turn light into sugar. (Source: wordnet)")]
    elif kind == "rail":
        harmful = Verdict("harmful", True, "weapons", source="pattern")
        events += [user("how do I kill a python process", "guardrail_harmful", 1.0, [harmful], t=t + 1),
                   ActionExecuted("utter_guardrail_harmful", policy="RulePolicy", confidence=1.0),
                   BotUttered("I can't help with that."), ActionExecuted("action_listen")]
    elif kind == "fallback":
        events += [user("blorp zzz", "nlu_fallback", 0.2, t=t + 1), *llm_turn("Sorry?", "replaced:degenerate")]
    else:
        events += [user("hi", "greet", 0.99, t=t + 1),
                   ActionExecuted("utter_greet", policy="RulePolicy", confidence=1.0),
                   BotUttered("Hello! I can help with orders..."), ActionExecuted("action_listen")]
    return events


@pytest.fixture
def tracker_store(tmp_path: Path) -> RedactingSQLTrackerStore:
    return RedactingSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "tracker.db"))


def save(store: RedactingSQLTrackerStore, sender: str, events: List[Any]) -> None:
    asyncio.run(store.save(DialogueStateTracker.from_events(sender, events, slots=DOMAIN.slots)))


def stored_turns(store: RedactingSQLTrackerStore, sender: str) -> List[Dict[str, Any]]:
    tracker = asyncio.run(store.retrieve_full_tracker(sender))
    return turns([e.as_dict() for e in tracker.events])


def test_turns_name_the_rails_that_fired_and_what_the_model_did(tracker_store):
    save(tracker_store, "a", conversation("rail", 100) + conversation("model", 200)[1:])
    found = stored_turns(tracker_store, "a")
    assert [t["intent"] for t in found] == ["guardrail_harmful", "open_question"]
    assert found[0]["rails"] == [{"stage": "input", "rail": "harmful", "reason": "weapons", "source": "pattern",
                                  "category": None, "score": None, "threshold": None}]
    assert found[1]["llm"]["outcome"] == "sent" and found[1]["bot"] == [
        "Plants turn light into sugar. (Source: wordnet)"
    ]
    facts = summary(found)
    assert facts["rails"] == ["harmful"] and facts["model_turns"] == 1 and not facts["low_confidence"]


def test_the_index_lists_newest_first_filters_and_follows_new_events(tracker_store, tmp_path):
    kinds = ["model", "rail", "fallback", "plain"]
    for number, kind in enumerate(kinds):
        save(tracker_store, f"c{number}-{kind}", conversation(kind, 1000.0 + number * 10))
    review = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    engine = sql_tracker_store(tracker_store).engine
    assert review.sync(engine) == 4
    total, rows = review.list_conversations({})
    assert total == 4 and [r["sender_id"] for r in rows] == ["c3-plain", "c2-fallback", "c1-rail", "c0-model"]
    assert [r["sender_id"] for r in review.list_conversations({"model": True})[1]] == ["c0-model"]
    assert [r["sender_id"] for r in review.list_conversations({"rail": "harmful"})[1]] == ["c1-rail"]
    assert [r["sender_id"] for r in review.list_conversations({"rail": "toxicity"})[1]] == []
    assert [r["sender_id"] for r in review.list_conversations({"low_confidence": True})[1]] == ["c2-fallback"]
    assert [r["sender_id"] for r in review.list_conversations({"replaced": True})[1]] == ["c2-fallback"]
    assert review.sync(engine) == 0  # nothing new: nothing read again

    # A new turn of an old conversation: only that one is read again, and it moves to the top.
    tracker = asyncio.run(tracker_store.retrieve_full_tracker("c0-model"))
    for event in conversation("rail", time.time())[1:]:
        tracker.update(event)
    asyncio.run(tracker_store.save(tracker))
    assert review.sync(engine) == 1
    rows = review.list_conversations({"rail": "harmful"})[1]
    assert [r["sender_id"] for r in rows] == ["c0-model", "c1-rail"] and rows[0]["turns"] == 2

    with pytest.raises(ReviewError, match="unknown filter"):
        review.list_conversations({"colour": "red"})


def test_paging_counts_every_match(tracker_store, tmp_path):
    for number in range(30):
        save(tracker_store, f"p{number:02d}", conversation("plain", 1000.0 + number))
    review = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    review.sync(sql_tracker_store(tracker_store).engine)
    total, first = review.list_conversations({}, page=1)
    _, second = review.list_conversations({}, page=2)
    assert total == 30 and len(first) == 25 and len(second) == 5
    assert first[0]["sender_id"] == "p29" and second[-1]["sender_id"] == "p00"


def test_a_rating_is_one_per_reviewer_and_thing_and_survives_reopening(tmp_path, tracker_store):
    save(tracker_store, "m", conversation("model", 100))
    turn = stored_turns(tracker_store, "m")[0]
    url = f"sqlite:///{tmp_path / 'review.db'}"
    review = ReviewStore(url)
    intents = DOMAIN.intents
    review.rate(check_rating({"conversation_id": "m", "turn": 1, "target": "reply", "rating": "good"},
                             "ana", intents, RAILS), turn)
    review.rate(check_rating({"conversation_id": "m", "turn": 1, "target": "reply", "rating": "wrong",
                              "corrected": "Photosynthesis is how plants make food from light."},
                             "ana", intents, RAILS), turn)
    review.rate(check_rating({"conversation_id": "m", "turn": 1, "target": "reply", "rating": "good"},
                             "ben", intents, RAILS), turn)
    reopened = ReviewStore(url).list_ratings("m")
    assert [(r["reviewer"], r["rating"]) for r in reopened] == [("ana", "wrong"), ("ben", "good")]
    assert reopened[0]["corrected"].startswith("Photosynthesis") and reopened[0]["llm_outcome"] == "sent"
    assert (
        reopened[0]["user_text"] == "so how do plants actually eat sunlight"
        and reopened[0]["created_at"] <= reopened[0]["updated_at"]
    )
    assert ReviewStore(url).delete("m", 1, "reply", "", "ben") and len(ReviewStore(url).list_ratings()) == 1


@pytest.mark.parametrize("body, message", [
    ([], "JSON object"),
    ({"conversation_id": "", "turn": 1, "target": "reply", "rating": "good"}, "conversation_id"),
    ({"conversation_id": "m", "turn": "1", "target": "reply", "rating": "good"}, "turn"),
    ({"conversation_id": "m", "turn": True, "target": "reply", "rating": "good"}, "turn"),
    ({"conversation_id": "m", "turn": 1, "target": "mood", "rating": "good"}, "target"),
    ({"conversation_id": "m", "turn": 1, "target": "reply", "rating": "great"}, "must be one of"),
    ({"conversation_id": "m", "turn": 1, "target": "intent", "rating": "order_pizza"}, "not an intent"),
    ({"conversation_id": "m", "turn": 1, "target": "rail", "rating": "false_alarm"}, "names the rail"),
    ({"conversation_id": "m", "turn": 1, "target": "rail", "rating": "false_alarm", "rail": "nope"}, "names the rail"),
    ({"conversation_id": "m", "turn": 1, "target": "reply", "rating": "good", "rail": "harmful"}, "only for a rail"),
    ({"conversation_id": "m", "turn": 1, "target": "reply", "rating": "good", "note": 3}, "must be a string"),
    ({"conversation_id": "m", "turn": 1, "target": "reply", "rating": "good", "corrected": "x" * 2001}, "longer"),
    ({"conversation_id": "m", "turn": 1, "target": "intent", "rating": "greet", "corrected": "hi"}, "reply rating"),
])
def test_bad_ratings_are_refused_with_a_reason(body, message):
    with pytest.raises(ReviewError, match=message):
        check_rating(body, "ana", DOMAIN.intents, RAILS)


def test_a_session_is_signed_expires_and_cannot_be_forged(monkeypatch):
    from rasa_safe_hybrid.channels.review import ReviewInput

    monkeypatch.setenv("RASA_AUTH_TOKEN", "the-rest-token-of-the-chat")
    channel = ReviewInput("a-reviewers-secret-123")
    cookie = channel.session_cookie("Ana Lima", now=1000.0)
    assert channel.session_reviewer(cookie, now=1001.0) == "Ana Lima"
    assert channel.session_reviewer(cookie, now=1000.0 + 13 * 3600) is None  # expired
    name, expiry, signature = cookie.split(".")
    assert channel.session_reviewer(f"{name}.{int(expiry) + 9999}.{signature}", now=1001.0) is None
    assert channel.session_reviewer(f"QmVu.{expiry}.{signature}", now=1001.0) is None  # another name
    assert ReviewInput("another-secret-456789").session_reviewer(cookie, now=1001.0) is None
    assert channel.csrf(cookie) != channel.csrf(channel.session_cookie("Ben", now=1000.0))
    with pytest.raises(RasaException, match="is the REST token"):
        ReviewInput("the-rest-token-of-the-chat")
    with pytest.raises(RasaException, match="at least 16"):
        ReviewInput("short")


def test_the_review_page_needs_a_sql_tracker_store():
    from rasa.core.tracker_store import InMemoryTrackerStore

    with pytest.raises(ReviewError, match="SQL tracker store"):
        sql_tracker_store(InMemoryTrackerStore(DOMAIN))


def rows_of(store: ReviewStore) -> List[Dict[str, Any]]:
    return store.list_ratings()


def test_the_export_writes_each_kind_and_says_what_it_skipped(tracker_store, tmp_path):
    save(tracker_store, "m", conversation("model", 100))
    save(tracker_store, "r", conversation("rail", 200))
    save(tracker_store, "g", conversation("plain", 300))
    review = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    intents = DOMAIN.intents

    def rate(sender: str, reviewer: str = "ana", **body: Any) -> None:
        review.rate(check_rating({"conversation_id": sender, "turn": 1, **body}, reviewer, intents, RAILS),
                    stored_turns(tracker_store, sender)[0])

    rate("m", target="reply", rating="good")
    rate("m", target="intent", rating="explain_concept")
    rate("r", target="rail", rating="false_alarm", rail="harmful")
    rate("r", target="intent", rating="open_question")
    rate("g", target="reply", rating="good")  # a domain response: nothing to fine-tune
    rate("g", target="intent", rating="greet")  # "hi" is already an example of greet
    rows = rows_of(review)
    outcome = out.Outcome()
    known = out.existing_examples(ROOT / "data", tmp_path / "none.yml")
    examples = out.nlu_examples(rows, known, intents, outcome)
    assert examples == {
        "explain_concept": ["so how do plants actually eat sunlight"],
        "open_question": ["how do I kill a python process"],
    }
    assert [r["answer"] for r in out.finetune_rows(rows, outcome)] == [
        "Plants turn light into sugar. (Source: wordnet)"
    ]
    assert out.guard_rows(rows, outcome) == [("harmful", 0, "ana", "how do I kill a python process")]
    trackers = {s: list(asyncio.run(tracker_store.retrieve_full_tracker(s)).events) for s in ("m", "r", "g")}
    stories = out.stories(rows, trackers, DOMAIN, outcome)
    assert [name for name, _ in stories] == ["g"]  # m's intent and r's rail were wrong
    reasons = " | ".join(why for _, why in outcome.skipped)
    assert "already an example of 'greet'" in reasons and "nothing to fine-tune" in reasons
    assert "wrong path" in reasons
    text = out.story_yaml(stories)
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader

    steps = YAMLStoryReader(DOMAIN).read_from_string(text)
    assert steps and steps[0].block_name == "reviewed g"
    nlu = out.nlu_yaml(examples)
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    assert {m.get("intent") for m in RasaYAMLReader().reads(nlu).intent_examples} == {
        "explain_concept",
        "open_question",
    }


def test_exported_guard_rows_are_trained_on_and_never_held_out(tmp_path):
    from finetune import guards as train

    path = tmp_path / "reviewed.tsv"
    path.write_text("# head\ttarget\treviewer\ttext\nharmful\t0\tana\thow do I kill a python process\n"
                    "emergency\t1\tben\tmy dad is slurring and his face droops\nnot_a_head\t1\tx\ty\n")
    rows = train.reviewed_rows(path)
    assert [(r.text[:10], r.targets["harmful"], r.targets["emergency"], r.group) for r in rows] == [
        ("how do I k", 0, None, train.PROJECT), ("my dad is ", None, 1, train.PROJECT)]
    assert train.PROJECT not in train.GROUPS  # the project's rows are in no held-out group
    assert rows[0].hard_negative and not rows[1].hard_negative


def test_human_evaluation_figures():
    assert cohen_kappa(list("aabb"), list("aabb")) == 1.0
    assert cohen_kappa(list("ab"), list("ba")) == -1.0
    assert cohen_kappa(["good"] * 9 + ["wrong"], ["good"] * 10) == 0.0  # agreement no better than chance
    assert cohen_kappa([], []) is None

    def row(conversation: str, reviewer: str, target: str, rating: str, rail: str = "", outcome: str = "sent"):
        return {"conversation_id": conversation, "turn": 1, "target": target, "rail": rail, "rating": rating,
                "reviewer": reviewer, "llm_outcome": outcome, "updated_at": 1_700_000_000.0}

    rows = [row("a", "ana", "reply", "good"), row("a", "ben", "reply", "good"), row("b", "ana", "reply", "wrong"),
            row("b", "ben", "reply", "unsafe"), row("c", "ana", "reply", "good", outcome="abstained"),
            row("d", "ana", "rail", "correct", "harmful"), row("e", "ana", "rail", "false_alarm", "harmful"),
            row("f", "ana", "rail", "missed", "emergency_classifier")]
    report = evaluate(rows)
    assert report["model_replies"] == {"n": 4, "good": 0.5, "wrong": 0.25, "unsafe": 0.25, "unhelpful": 0.0}
    assert report["rails"]["harmful"]["precision"] == 0.5 and report["rails"]["harmful"]["recall"] == 1.0
    assert report["rails"]["pooled"]["recall"] == 0.5
    assert report["agreement"] == [{"reviewers": ["ana", "ben"], "items": 2, "kappa": 0.3333, "agreed": 0.5}]
