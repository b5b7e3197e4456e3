"""Retrieval over the knowledge: index, decisions, grounding, documents (offline, the shared encoder)."""

from __future__ import annotations

import os

import pytest
from rasa_safe_hybrid.retrieval.answer import ABSTAIN, CHITCHAT, EXTRACTED, GROUNDED, OFF, decide
from rasa_safe_hybrid.retrieval.grounding import check
from rasa_safe_hybrid.retrieval.index import KnowledgeIndex, load_index, words
from rasa_safe_hybrid.retrieval.passages import fingerprint, load_passages
from rasa_safe_hybrid.retrieval.settings import RetrievalConfigError, RetrievalSettings

from tests.conftest import ROOT

KNOWLEDGE = ROOT / "knowledge"
ENCODER = str(ROOT / ".cache" / "models" / "all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> RetrievalSettings:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return RetrievalSettings(enabled=True, knowledge=str(KNOWLEDGE), documents=str(KNOWLEDGE / "documents"),
                             index_dir=str(tmp_path_factory.mktemp("index")), encoder=ENCODER, threshold=0.49)


def test_the_knowledge_becomes_passages_with_sources():
    passages = load_passages(KNOWLEDGE, KNOWLEDGE / "documents")
    kinds = {p.kind for p in passages}
    assert {"glossary", "symptom", "medication", "open_qa", "course", "clinic"} <= kinds
    assert all(p.text and p.source for p in passages)
    assert {p.kind for p in passages if p.health} == {"symptom", "medication", "open_qa"}
    assert len({p.id for p in passages}) == len(passages)


@pytest.mark.parametrize("question, expected", [
    ("how do green plants turn sunshine into sugar", "glossary:photosynthesis"),
    ("a function that calls itself, what is that called", "glossary:recursion"),
    ("what does inflation do to the prices in shops", "glossary:inflation"),
    ("what do I do if my package arrived broken", "open_qa:8"),
    ("heart clinic in new york", "clinic:Hudson Heart Institute"),
])
def test_paraphrased_questions_find_their_passage(settings, question, expected):
    decision = decide(settings, question, "open_question")
    assert decision.mode in (GROUNDED, EXTRACTED)
    assert decision.relevant[0].passage.id == expected


def test_a_question_the_knowledge_does_not_answer_abstains(settings):
    decision = decide(settings, "What is the date of birth of Queen Elizabeth II?", "open_question")
    assert decision.mode == ABSTAIN and decision.passages is None
    assert decision.hits and decision.hits[0].score < settings.threshold


@pytest.mark.parametrize("text, intent", [
    ("do you like cats?", "chitchat"), ("Hello! How are you today?", "nlu_fallback"), ("I love rainy days", None),
    ("how old are you, by the way?", None), ("what is your favourite season", "nlu_fallback")])
def test_small_talk_without_knowledge_goes_to_the_model_with_no_passages(settings, text, intent):
    decision = decide(settings, text, intent)
    assert decision.mode == CHITCHAT and decision.passages == ()


@pytest.mark.parametrize("text", ["why is the sky blue?", "who is the CEO of your company", "explain black holes",
                                  "how many bones are in the human body", "do vaccines cause autism",
                                  "can I drink alcohol while taking antibiotics", "recommend a good restaurant"])
def test_a_request_for_information_with_nothing_retrieved_abstains(settings, text):
    assert decide(settings, text, "nlu_fallback").mode == ABSTAIN


def test_health_passages_are_extracted_never_generated(settings):
    decision = decide(settings, "I keep getting headaches, what helps", "open_question")
    assert decision.mode == EXTRACTED and decision.relevant[0].passage.health
    reply = decision.extractive()
    assert reply.startswith(decision.relevant[0].passage.text) and "\n(Source: " in reply


def test_the_grounded_prompt_carries_the_passages_and_the_reply_its_sources(settings):
    decision = decide(settings, "explain what an algorithm is", "open_question")
    assert decision.mode == GROUNDED
    prompt = decision.prompt("explain what an algorithm is")
    assert decision.relevant[0].passage.text in prompt and prompt.endswith("Question: explain what an algorithm is")
    assert all(not h.passage.health for h in decision.relevant)
    assert decision.with_sources("An algorithm is a list of steps.").endswith(")")
    assert "algorithm" in decision.with_sources("x").split("(Source: ")[1]


def test_retrieval_off_and_a_broken_index_fail_closed(settings, tmp_path):
    assert decide(RetrievalSettings(enabled=False), "anything", None).mode == OFF
    broken = RetrievalSettings(enabled=True, knowledge=str(tmp_path / "none"), documents=str(tmp_path / "none"),
                               index_dir=str(tmp_path), encoder=str(tmp_path / "no-encoder"))
    decision = decide(broken, "what is photosynthesis", "open_question")
    assert decision.mode == ABSTAIN and decision.error


def test_a_user_document_becomes_answerable_after_indexing(tmp_path):
    documents = tmp_path / "documents"
    documents.mkdir()
    settings = RetrievalSettings(enabled=True, knowledge=str(KNOWLEDGE), documents=str(documents),
                                 index_dir=str(tmp_path / "index"), encoder=ENCODER, threshold=0.49)
    question = "when is the campus library open on weekends"
    assert decide(settings, question, "open_question").mode == ABSTAIN
    (documents / "library.md").write_text(
        "# Campus library\n\nThe campus library is open on weekends from 10:00 to 16:00. "
        "Students need their card to enter.\n", "utf-8")
    decision = decide(settings, question, "open_question")  # the knowledge changed: rebuilt
    assert decision.mode == GROUNDED
    assert decision.relevant[0].passage.id == "document:library.md#0"
    assert decision.relevant[0].passage.title == "Campus library"


def test_a_saved_index_is_read_back_and_a_stale_one_is_not(tmp_path):
    passages = load_passages(KNOWLEDGE, tmp_path)[:5]
    index = KnowledgeIndex.build(passages, ENCODER)
    index.save(tmp_path, fingerprint(passages))
    again = KnowledgeIndex.read(tmp_path, fingerprint(passages), ENCODER)
    assert again is not None and [p.id for p in again.passages] == [p.id for p in passages]
    assert KnowledgeIndex.read(tmp_path, "another-fingerprint", ENCODER) is None
    assert load_index(KNOWLEDGE, tmp_path / "nothing", tmp_path / "idx", ENCODER) is load_index(
        KNOWLEDGE, tmp_path / "nothing", tmp_path / "idx", ENCODER)  # one per process


PASSAGE = ("Photosynthesis is the process by which plants, algae and some bacteria use light energy to "
           "turn carbon dioxide and water into glucose and oxygen.")


@pytest.mark.parametrize("reply, grounded", [
    ("Photosynthesis lets plants use light energy to turn carbon dioxide and water into glucose and oxygen.", True),
    ("It was discovered by Newton in 1687.", False),
    ("Photosynthesis happens only at night inside the roots of old trees and stones.", False),
    ("Hello! Happy to help.", False),  # answers nothing the passage says
    ("Photosynthesis turns light, water and carbon dioxide into glucose. Hope that helps!", True),
])
def test_grounding_checks_each_sentence(reply, grounded):
    assert check(reply, [PASSAGE], ENCODER).grounded is grounded


def test_a_reply_that_names_the_topic_but_says_nothing_of_it_is_not_grounded():
    question = "can you explain how plants make food from sunlight"
    result = check('The answer to this question would be "Photosynthesis."', [PASSAGE], ENCODER, question)
    assert not result.grounded and "beyond the question" in result.reason
    assert check("Plants use light energy to make glucose from water and carbon dioxide.", [PASSAGE], ENCODER,
                 question).grounded


def test_without_passages_only_numbers_and_names_are_checked():
    assert check("Cats are lovely and like to sleep a lot!", [], ENCODER).grounded
    result = check("Kurt Cobain was killed by the military in 2014.", [], ENCODER)
    assert not result.grounded and "2014" in result.reason


def test_words_drop_stop_words_and_fold_plurals():
    assert words("What are the symptoms of headaches?") == ["symptom", "headache"]


@pytest.mark.parametrize("config, message", [
    ({"top_k": 0}, "`top_k` must be between 1 and 10"),
    ({"threshold": 1.5}, "`threshold` must be in (0, 1)"),
    ({"answer": "paraphrase"}, "`answer` must be 'generate' or 'extract'"),
    ({"enabled": "yes"}, "`enabled` must be true or false"),
    ({"index": "x"}, "unknown key(s) ['index']"),
    ({"passage_replaces": ["degenerate", "medical_claims"]}, "safety rails always send their own response), "
                                                             "got ['medical_claims']"),
])
def test_bad_settings_say_what_to_change(config, message):
    with pytest.raises(RetrievalConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        RetrievalSettings.from_config(config)
