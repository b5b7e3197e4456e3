"""Small talk that fits: what a reply to small talk must not do, and a fitting reply when it does.

``misread(reply, user_texts)`` finds the three ways a small model misreads small
talk: condolences when nobody mentioned a loss ("it's raining again" -> "I'm
sorry for your loss"), personal facts the assistant cannot have ("my favourite
colour is blue, I live on an island"), and a reply about something else (its
meaning far from the message's). The ``small_talk`` output rail runs it on
chit-chat turns; when it fires, ``reply_for(user_text)`` answers instead: a
short reply that fits what the user said (news good or bad, a loss, a question
about the assistant itself, anything else) and, where it fits, what the
assistant can do. The user's text is classified by meaning (the shared sentence
encoder against the example sentences below), with a few words that decide
alone (a death is a loss whatever else is said).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from rasa_safe_hybrid.embeddings import DEFAULT_MODEL, get_encoder

CONDOLENCE = re.compile(r"\b(sorry (for|about) your loss|(my|our) (deepest )?condolences|sympathy for your loss|"
                        r"rest in peace|may (he|she|they) rest|passing of|grieving|this difficult time|"
                        r"sorry to hear about your (loss|passing))\b", re.I)
LOSS = re.compile(r"\b(died|dead|death|passed away|passing|funeral|lost (my|our|her|his|their) (\w+ )?"
                  r"(mother|father|mom|mum|dad|wife|husband|partner|son|daughter|child|baby|brother|sister|"
                  r"friend|grandmother|grandfather|grandma|grandpa|granny|aunt|uncle|cousin|dog|cat|pet)|"
                  r"lost our|put (him|her) down|miscarriage|grief|grieving|bereave\w*|"
                  r"widow\w*|rip\b)", re.I)
# First-person claims about a life the assistant does not have.
PERSONAL_FACT = re.compile(
    r"\b(my (favou?rite|wife|husband|family|kids?|children|son|daughter|mom|mum|dad|mother|father|dog|cat|"
    r"pet|friend|home|house|hometown|childhood|job|boss|island|city|country)\b|"
    r"I (live|lived|grew up|was born|went|visited|travel(l)?ed|ate|cooked|watched|played|have (a|an|two|three)|"
    r"own (a|an)|used to|am from|'m from|remember when|"
    r"(really |just )?(love|like|adore|hate|enjoy|prefer) (?!to help|helping|hearing|that|it when you))|"
    r"when I was (a|young|little)|on our island|where I live)\b", re.I)
MIN_RELEVANCE = 0.12  # cosine of reply and message below which a reply is about something else ...
MIN_GENERIC = 0.5  # ... unless it is this close to one of the fitting replies below (a generic friendly one)


@dataclass(frozen=True)
class Act:
    """One kind of small talk, how to recognise it and how to answer it."""

    name: str
    examples: Sequence[str]
    reply: str


ACTS = (
    Act("loss", ("my grandfather died this morning", "we had to put our old dog down", "I lost my mum last year",
                 "my best friend passed away", "our cat died and the house feels empty"),
        "I'm so sorry for your loss. That is hard. If you want to talk about it, I'm here."),
    Act("bad_news", ("I had an awful shift", "everything went wrong this afternoon", "I'm so stressed about my boss",
                     "I feel miserable and worn out", "my presentation went badly", "the weather is terrible and grey",
                     "I'm fed up with the building work next door", "I got soaked on the way home",
                     "I'm worried about the results", "I feel a bit down this evening", "my laptop crashed again",
                     "I got dumped", "there's nothing to do and I'm restless"),
        "Sorry to hear that, that sounds frustrating. I hope the rest of your day is kinder. "
        "If there's anything I can help with, just ask."),
    Act("good_news", ("I got the promotion!", "we won the quiz", "I passed my exam", "I'm in such a good mood",
                      "my nephew was born last night", "I finally finished the painting", "the trip was wonderful",
                      "I love sunny mornings", "I'm excited about the festival", "we had a great time at the party",
                      "I made a delicious curry", "I'm proud of what I did"),
        "That's great to hear, well done! Is there anything I can help you with today?"),
    Act("about_me", ("what kind of books do you read", "what's your star sign", "are you married",
                     "what's your hometown", "do you support a football team", "do you go on holiday",
                     "do you cook", "what car do you drive", "do you play an instrument", "what's your job",
                     "have you got siblings", "what did you eat today"),
        "I'm an assistant, a computer program, so I don't have favourites, a home or a life of my own. "
        "But I'm happy to chat, and I can help with orders, courses and health information."),
    Act("statement", ("we're repainting the kitchen", "I'm waiting for the kettle to boil",
                      "my neighbour lent me a ladder", "I'm sorting out my wardrobe", "I'm on the sofa with a blanket",
                      "I tidied my desk", "we're having soup for supper", "I'm listening to a podcast",
                      "I fed the ducks at the pond", "I'm sitting in the garden"),
        "That sounds nice! I can help with orders, courses and health information whenever you need."),
)
_ACTS = {act.name: act for act in ACTS}


class SmallTalk:
    """Classifies small talk by meaning and checks replies to it (one shared encoder)."""

    def __init__(self, encoder_model: str = DEFAULT_MODEL) -> None:
        self.encoder_model = encoder_model
        self._vectors: Optional[Dict[str, np.ndarray]] = None

    def _examples(self) -> Dict[str, np.ndarray]:
        if self._vectors is None:
            encoder = get_encoder(self.encoder_model)
            self._vectors = {act.name: encoder.encode(list(act.examples)) for act in ACTS}
        return self._vectors

    def act(self, user_text: str) -> str:
        """Which kind of small talk ``user_text`` is."""
        if LOSS.search(user_text):
            return "loss"
        vector = get_encoder(self.encoder_model).encode([user_text])[0]
        scores = {name: float(np.sort(vectors @ vector)[-3:].mean()) for name, vectors in self._examples().items()
                  if name != "loss"}
        return max(scores, key=lambda name: scores[name])

    def reply_for(self, user_text: str) -> str:
        """A short reply that fits ``user_text``."""
        return _ACTS[self.act(user_text)].reply

    def misread(self, reply: str, user_texts: Sequence[str]) -> Optional[str]:
        """Why ``reply`` misreads the small talk of ``user_texts`` (the latest last), or None."""
        said = " ".join(user_texts)
        condolence = CONDOLENCE.search(reply)
        if condolence and not LOSS.search(said):
            return f"condolences, but no loss was mentioned: {condolence.group(0)!r}"
        fact = PERSONAL_FACT.search(reply)
        if fact:
            return f"a personal fact the assistant cannot have: {fact.group(0)!r}"
        if user_texts:
            encoder = get_encoder(self.encoder_model)
            vectors = encoder.encode([reply, user_texts[-1]] + [act.reply for act in ACTS])
            relevance = float(vectors[0] @ vectors[1])
            # a friendly reply that could answer any small talk ("That's great to hear!") is about the
            # turn even when it shares no meaning with it; a reply about something else is neither
            generic = float(np.max(vectors[2:] @ vectors[0]))
            if relevance < MIN_RELEVANCE and generic < MIN_GENERIC:
                return f"about something else (meaning {relevance:.2f} from the message, below {MIN_RELEVANCE})"
        return None


def reply_of(act: str) -> str:
    """The reply for a kind of small talk (``SmallTalk.act``)."""
    return _ACTS[act].reply


_SHARED: Dict[str, SmallTalk] = {}


def shared(encoder_model: str = DEFAULT_MODEL) -> SmallTalk:
    """The process-wide SmallTalk for ``encoder_model``."""
    if encoder_model not in _SHARED:
        _SHARED[encoder_model] = SmallTalk(encoder_model)
    return _SHARED[encoder_model]


def examples() -> List[str]:
    """Every example sentence (tests check none of them is in a held-out set)."""
    return [e for act in ACTS for e in act.examples]
