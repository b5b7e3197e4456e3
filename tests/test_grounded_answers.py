"""The LLM action with retrieval on (the project's config.yml): grounded, extracted, abstained."""

from __future__ import annotations

from typing import List

import pytest
import rasa_safe_hybrid.actions.llm_action as llm_action
from rasa_safe_hybrid import small_talk
from rasa_safe_hybrid.actions.llm_action import ActionLLMResponse
from rasa_safe_hybrid.generation import Generation
from rasa_sdk.executor import CollectingDispatcher

from tests.helpers import make_tracker


class Scripted:
    """A generator with canned replies that records what it was asked."""

    def __init__(self, *replies: str) -> None:
        self.replies: List[str] = list(replies)
        self.prompts: List[str] = []

    def generate(self, history, user_text):
        self.prompts.append(user_text)
        text = self.replies.pop(0)
        return Generation(text, text, len(text.split()), 0.01, False, "scripted")


@pytest.fixture
def scripted(monkeypatch):
    def install(*replies: str) -> Scripted:
        generator = Scripted(*replies)
        monkeypatch.setattr(llm_action, "get_generator", lambda settings: generator)
        return generator
    return install


async def _turn(text: str, intent: str, domain):
    dispatcher = CollectingDispatcher()
    events = await ActionLLMResponse().run(dispatcher, make_tracker(text, intent), domain)
    return dispatcher.messages, events[0]["value"]


async def test_a_supported_reply_is_sent_with_its_source(scripted, domain):
    generator = scripted("An algorithm is a finite list of steps that solves a problem.")
    [message], trace = await _turn("explain what an algorithm is", "open_question", domain)
    assert trace["outcome"] == "sent" and trace["retrieval"]["mode"] == "grounded"
    assert "glossary:algorithm" in trace["retrieval"]["sources"]
    assert message["text"].startswith("An algorithm is a finite list of steps")
    assert "(Source: algorithm" in message["text"]
    assert "Facts:" in generator.prompts[0] and "Question: explain what an algorithm is" in generator.prompts[0]


async def test_an_unsupported_claim_is_replaced_by_the_passage(scripted, domain):
    scripted("An algorithm was invented by Ada Lovelace in 1843 for the Analytical Engine.")
    [message], trace = await _turn("explain what an algorithm is", "open_question", domain)
    assert trace["outcome"] == "replaced:ungrounded"
    assert trace["output_rails"]["decisive"] == "ungrounded"
    assert "1843" not in message["text"] and "(Source: algorithm" in message["text"]


async def test_a_garbled_grounded_reply_gives_way_to_the_passage_but_a_safety_rail_keeps_its_response(
        scripted, domain):
    scripted("algorithm algorithm algorithm algorithm algorithm algorithm algorithm algorithm")
    [message], trace = await _turn("explain what an algorithm is", "open_question", domain)
    assert trace["outcome"] == "replaced:degenerate" and trace["passage_sent"] is True
    assert "(Source: algorithm" in message["text"]
    scripted("An algorithm is a list of steps; take 500 mg of ibuprofen with it.")
    [message], trace = await _turn("explain what an algorithm is", "open_question", domain)
    assert trace["output_rails"]["decisive"] == "medical_claims"
    assert message["response"] == "utter_medical_referral" and "passage_sent" not in trace


async def test_an_unknown_fact_is_not_invented(scripted, domain):
    generator = scripted()  # asking it would fail: no reply is scripted
    [message], trace = await _turn("What is the date of birth of Queen Elizabeth II?", "nlu_fallback", domain)
    assert trace["outcome"] == "abstained" and message["response"] == "utter_llm_dont_know"
    assert generator.prompts == []


async def test_a_health_question_is_answered_by_the_curated_passage_only(scripted, domain):
    generator = scripted()
    [message], trace = await _turn("what is cetirizine used for", "open_question", domain)
    assert trace["outcome"] == "extracted" and trace["retrieval"]["sources"] == ["medication:cetirizine"]
    assert "Source: cetirizine" in message["text"] and generator.prompts == []


async def test_chitchat_may_be_small_talk_but_not_invent_facts(scripted, domain):
    scripted("Cats are lovely company!", "Cats were first domesticated in Egypt in 7500 BC.",
             "I love cats, they are lovely company!")
    [message], trace = await _turn("do you like cats?", "chitchat", domain)
    assert (trace["outcome"], trace["retrieval"]["mode"]) == ("sent", "chitchat")
    assert message["text"] == "Cats are lovely company!"
    # an invented fact, then an invented preference: the reply that fits a question about the assistant
    for rail in ("ungrounded", "small_talk"):
        [message], trace = await _turn("do you like cats?", "chitchat", domain)
        assert trace["outcome"] == f"replaced:{rail}" and trace["small_talk"] == "about_me"
        assert message["text"] == small_talk.reply_of("about_me")
