"""Danger told from its words: floors and ceilings on the held-out sets, per category and context.

The emergency signal (patterns, danger words, the classifier over the message and its
clauses; without the NLU intent, which needs a trained model) and the input rails, on the
held-out look-alikes with danger vocabulary (``tests/data/danger_look_alikes.tsv``) and the
fifth emergency batch (``tests/data/emergency_paraphrases_5.tsv``). Both were written before
the changes they measure and never trained on. The ceilings and floors are the measurement
of 2026-12-07 (``make eval-rails``) with a little room: they catch a change that loses ground,
they are not targets. The whole path with the trained model: ``benchmarks/severity.py``
(``make eval-rails``) and ``tests/e2e/test_emergencies.py``.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from benchmarks.severity import emergencies, look_alikes
from tests.conftest import ROOT

# Share of the look-alikes (both batches) that the signal escalates or asks about, or an input rail
# refuses, on the rails side alone (the NLU's skip_intents and routing are not in it): 13.7 % of
# 525 on 2026-12-07, small talk the worst category (33 %).
CEILINGS = {"all": 0.15}
CATEGORY_CEILING = 0.35  # no category may be stopped more often than this
# Share of batch 5 the signal alone escalates or asks about (without the NLU intent): 93.5 %,
# 73.1 % at once, on 2026-12-07.
FLOORS = {"all": 0.92}
STRONG_FLOOR = 0.70


@pytest.fixture(scope="module")
def signal():
    from rasa_safe_hybrid.config import load_plugin_config

    plugin = load_plugin_config(ROOT / "config.yml")
    return plugin.emergency, plugin.guardrails


def test_the_held_out_sets_are_large_and_spread(signal):
    rows = look_alikes()
    assert len(rows) >= 400 and len({c for c, _ in rows}) >= 12
    batch = [r for r in emergencies() if r[0].endswith("_5")]
    assert len(batch) >= 200 and {c for _, c, _ in batch} >= {"mixed", "form", "symptoms", "typo", "slang"}


def test_look_alikes_are_rarely_stopped_in_every_category(signal):
    emergency, rails = signal
    stopped: Counter = Counter()
    counts: Counter = Counter()
    examples = defaultdict(list)
    for category, text in look_alikes():
        counts[category] += 1
        counts["all"] += 1
        tier = emergency.assess(text).tier
        refused = rails.check_input(text).decisive
        if tier or refused:
            stopped[category] += 1
            stopped["all"] += 1
            examples[category].append(f"{text} [{tier or refused.rail}]")
    shares = {c: stopped[c] / counts[c] for c in counts}
    print({c: round(v, 3) for c, v in sorted(shares.items())})
    assert shares["all"] <= CEILINGS["all"], examples
    over = {c: v for c, v in shares.items() if v > CATEGORY_CEILING}
    assert not over, {c: examples[c] for c in over}


def test_the_fifth_emergency_batch_is_found_in_every_context(signal):
    emergency, _ = signal
    found: Counter = Counter()
    strong: Counter = Counter()
    counts: Counter = Counter()
    missed = []
    for _, context, text in [r for r in emergencies() if r[0].endswith("_5")]:
        tier = emergency.assess(text).tier
        for key in (context, "all"):
            counts[key] += 1
            found[key] += tier is not None
            strong[key] += tier == "strong"
        if tier is None:
            missed.append((context, text))
    shares = {c: round(found[c] / counts[c], 3) for c in counts}
    print(shares, "strong:", round(strong["all"] / counts["all"], 3), "missed:", missed)
    assert shares["all"] >= FLOORS["all"], missed
    assert strong["all"] / counts["all"] >= STRONG_FLOOR
