"""Checks of the training data and knowledge files, including `rasa data validate`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MIN_EXAMPLES_PER_INTENT = 20
# Intents set by components, not by the classifier: they have no examples.
# emergency_triage: set by the EmergencyDetector on a moderate emergency signal.
BUILT_IN_INTENTS = {"nlu_fallback", "emergency_triage"}
RAIL_INTENT_PREFIX = "guardrail_"


def _nlu_examples():
    counts: Counter = Counter()
    for path in (ROOT / "data" / "nlu").glob("*.yml"):
        for block in yaml.safe_load(path.read_text("utf-8")).get("nlu", []):
            if "intent" in block:
                counts[block["intent"]] += len(
                    [line for line in block["examples"].splitlines() if line.strip().startswith("- ")]
                )
    return counts


def test_generated_files_are_current():
    result = subprocess.run(
        [sys.executable, "scripts/gen_data.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_intent_has_enough_varied_examples():
    domain = yaml.safe_load((ROOT / "domain.yml").read_text("utf-8"))
    counts = _nlu_examples()
    intents = {
        i for i in domain["intents"] if i not in BUILT_IN_INTENTS and not i.startswith(RAIL_INTENT_PREFIX)
    }
    assert intents == set(counts), "intents in domain.yml and data/nlu differ"
    short = {i: n for i, n in counts.items() if n < MIN_EXAMPLES_PER_INTENT}
    assert not short, f"intents with fewer than {MIN_EXAMPLES_PER_INTENT} examples: {short}"


def test_responses_used_only_by_actions_really_are_used_there():
    """Rasa's validator can't see responses sent from Python: check them here instead."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text("utf-8"))
    dialogue = "".join(p.read_text("utf-8") for p in (ROOT / "data").glob("*.yml"))
    code = "".join(
        p.read_text("utf-8") for d in ("actions", "components") for p in (ROOT / d).rglob("*.py")
    )
    config = (ROOT / "config.yml").read_text("utf-8")
    forms = domain["forms"]
    asked = {f"utter_ask_{slot}" for form in forms.values() for slot in form["required_slots"]}
    used_by_rasa = {"utter_default"}  # action_default_fallback sends it
    unused = [
        name
        for name in domain["responses"]
        if name not in dialogue and f'"{name}"' not in code and name not in config
        and name not in asked | used_by_rasa
    ]
    assert not unused, f"responses nothing sends: {unused}"


def test_rasa_data_validate_has_no_warnings_that_matter():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rasa"), "data", "validate", "--max-history", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    warnings = [
        line
        for line in output.splitlines()
        if re.search(r"UserWarning|WARNING|ERROR", line)
        # Responses sent from actions: checked by the test above.
        and "is not used in any story or rule" not in line
        # Rasa's own deprecation notices about its dependencies.
        and "MovedIn20Warning" not in line
        # guardrail_* intents are set by InputRails, never by the classifier.
        and not re.search(
            rf"intent '{RAIL_INTENT_PREFIX}\w+' is listed in the domain file, but is not found in the NLU", line
        )
        and not re.search(
            rf"intent '({'|'.join(BUILT_IN_INTENTS)})' is listed in the domain file, but is not found in " rf"the NLU",
            line,
        )
    ]
    assert not warnings, "\n".join(warnings)
    assert "No story structure conflicts found." in output


@pytest.mark.parametrize("name", ["glossary.yml", "symptoms.yml", "medications.yml"])
def test_curated_entries_have_text_and_sources(name):
    raw = yaml.safe_load((ROOT / "knowledge" / name).read_text("utf-8"))
    assert len(raw) >= 8
    for term, body in raw.items():
        assert term == term.lower(), term
        assert len(body["text"].split()) >= 10, term
        assert body.get("sources") or body.get("source"), term
