"""The small-talk checker and the fitting replies (offline, the shared encoder).

The example sentences below were written for these tests; none is in the held-out
small-talk set (benchmarks/data/small_talk.yml), which a test checks."""

from __future__ import annotations

import pytest
import yaml
from rasa_safe_hybrid import small_talk
from rasa_safe_hybrid.small_talk import SmallTalk

from tests.conftest import ROOT

ENCODER = str(ROOT / ".cache" / "models" / "all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def talk() -> SmallTalk:
    return SmallTalk(ENCODER)


@pytest.mark.parametrize(
    "user, reply, why",
    [
        (
            "it's drizzling all afternoon",
            "I'm sorry for your loss. I'm here for you in this difficult time.",
            "condolences",
        ),
        ("what colour do you like best", "My favourite colour is green, like the hills near my home.", "personal fact"),
        ("do you enjoy jazz", "I love jazz, I listen to it every evening.", "personal fact"),
        ("I cooked lasagne tonight", "When I was a child I lived on a farm.", "personal fact"),
        ("I'm off to the gym", "Quarterly tax filings are due for corporations.", "something else"),
    ],
)
def test_misreads_are_found(talk, user, reply, why):
    assert why in (talk.misread(reply, [user]) or "")


@pytest.mark.parametrize("user, reply", [
    ("my uncle passed away on Sunday", "I'm so sorry for your loss. I'm here if you want to talk."),
    ("we had to put our old cat down", "I'm sorry, that's really hard. She had a good life with you."),
    ("what colour do you like best", "I don't have a favourite colour, I'm a computer program. Which do you like?"),
    ("I'm off to the gym", "Have a good workout at the gym!"),
    ("my team won the cup final", "That's great news, congratulations to your team!"),
    ("I'd like some help later", "I'd love to help whenever you're ready."),
])
def test_replies_that_fit_pass(talk, user, reply):
    assert talk.misread(reply, [user]) is None


def test_the_loss_can_be_earlier_in_the_conversation(talk):
    reply = "I'm sorry for your loss. She sounds lovely."
    assert talk.misread(reply, ["my grandmother died last week", "she loved gardening"]) is None
    assert talk.misread(reply, ["she loved gardening"]) is not None


@pytest.mark.parametrize("user, act", [
    ("my dad died yesterday", "loss"), ("work was a nightmare today", "bad_news"),
    ("I won the chess tournament!", "good_news"), ("are you a morning person?", "about_me"),
    ("I'm sitting on the balcony", "statement")])
def test_a_fitting_reply_for_each_kind_of_small_talk(talk, user, act):
    assert talk.act(user) == act
    assert talk.reply_for(user) == small_talk.reply_of(act)
    assert talk.misread(small_talk.reply_of(act), [user]) is None


def test_the_fitting_replies_invent_nothing(talk):
    for act in small_talk.ACTS:
        assert not small_talk.PERSONAL_FACT.search(act.reply), act.name
        assert act.name == "loss" or not small_talk.CONDOLENCE.search(act.reply), act.name


def test_no_example_sentence_is_near_a_held_out_one():
    from rasa_safe_hybrid.embeddings import get_encoder

    held_out = [t for c in yaml.safe_load((ROOT / "benchmarks/data/small_talk.yml").read_text())["conversations"]
                for t in c]
    encoder = get_encoder(ENCODER)
    similarity = encoder.encode(small_talk.examples()) @ encoder.encode(held_out).T
    assert similarity.max() < 0.8, [
        (small_talk.examples()[i], held_out[j]) for i, j in zip(*(similarity >= 0.8).nonzero(), strict=False)
    ]


def test_the_development_small_talk_stands_apart_from_the_held_out_set():
    from rasa_safe_hybrid.embeddings import get_encoder

    held_out = [t for c in yaml.safe_load((ROOT / "benchmarks/data/small_talk.yml").read_text())["conversations"]
                for t in c]
    dev = [line for line in (ROOT / "benchmarks/data/small_talk_dev.txt").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    encoder = get_encoder(ENCODER)
    similarity = encoder.encode(dev) @ encoder.encode(held_out).T
    assert len(dev) == 149 and similarity.max() < 0.8, [
        (dev[i], held_out[j]) for i, j in zip(*(similarity >= 0.8).nonzero(), strict=False)]
