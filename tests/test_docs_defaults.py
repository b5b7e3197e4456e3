"""docs/plugin.md states the plugin's defaults; they must be the code's.

Every YAML block of the configuration reference is read; each key it shows with a
literal value is compared with the default the code has for it. A key the code does
not know fails too, so the page cannot drift from the code again. Values the page
writes as placeholders ("<trained>", "...") are not compared."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from tests.conftest import ROOT

PLACEHOLDERS = ("<trained>", "...")


def documented() -> Dict[str, Dict[str, Any]]:
    """Component name -> the config the page shows for it."""
    text = (ROOT / "docs" / "plugin.md").read_text("utf-8")
    components: Dict[str, Dict[str, Any]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        for item in yaml.safe_load(block) or []:
            components[item.pop("name")] = item
    return components


def code_defaults() -> Dict[str, Dict[str, Any]]:
    """Component name -> its defaults, with the nested ones the code resolves elsewhere spelt out."""
    from rasa_safe_hybrid.emergency import Tiers
    from rasa_safe_hybrid.generation.settings import (
        GenerationSettings,
        LlamaCppOptions,
        OpenAIOptions,
        TransformersOptions,
    )
    from rasa_safe_hybrid.guardrails import pii, registry
    from rasa_safe_hybrid.guardrails.engine import Guardrails
    from rasa_safe_hybrid.nlu.emergency_detector import EmergencyDetector
    from rasa_safe_hybrid.nlu.input_rails import InputRails
    from rasa_safe_hybrid.nlu.intent_classifier import LinearIntentClassifier
    from rasa_safe_hybrid.nlu.sentence_featurizer import SentenceEmbeddingFeaturizer
    from rasa_safe_hybrid.policies.llm_response_policy import LLMResponsePolicy
    from rasa_safe_hybrid.policies.triage_policy import EmergencyTriagePolicy
    from rasa_safe_hybrid.retrieval.settings import RetrievalSettings

    def fields(cls: Any) -> Dict[str, Any]:
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                out[f.name] = f.default_factory()  # type: ignore[misc]
        return out

    def listed(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    detector = EmergencyDetector.get_default_config()
    detector["tiers"] = {**fields(Tiers), "strong": "<trained>", "moderate": "<trained>"}
    rails = InputRails.get_default_config()
    rails["rails"] = {
        "input_rails": registry.default_names(registry.INPUT),
        "before_generation": Guardrails.DEFAULT_BEFORE_GENERATION,
        "passage_rails": Guardrails.DEFAULT_PASSAGE_RAILS, "document_rails": Guardrails.DEFAULT_DOCUMENT_RAILS,
        "pii_types": list(pii.ALL_TYPES), "patterns": {}, "extra_patterns": {}, "allow": {}, "thresholds": {},
        "encoder": ".cache/models/all-MiniLM-L6-v2", "heads": None}
    policy = LLMResponsePolicy.get_default_config()
    policy["output_rails"] = registry.default_names(registry.OUTPUT)
    policy["retrieval"] = {k: listed(v) for k, v in fields(RetrievalSettings).items()}
    generation = {k: listed(v) for k, v in fields(GenerationSettings).items() if k != "options"}
    generation.update({k: v for k, v in fields(LlamaCppOptions).items() if k != "gguf_file"})
    generation.update(fields(TransformersOptions))
    generation.update({k: v for k, v in fields(OpenAIOptions).items() if k not in generation})
    policy["generation"] = generation
    return {
        "rasa_safe_hybrid.nlu.sentence_featurizer.SentenceEmbeddingFeaturizer":
            SentenceEmbeddingFeaturizer.get_default_config(),
        "rasa_safe_hybrid.nlu.intent_classifier.LinearIntentClassifier": LinearIntentClassifier.get_default_config(),
        "rasa_safe_hybrid.nlu.emergency_detector.EmergencyDetector": detector,
        "rasa_safe_hybrid.policies.triage_policy.EmergencyTriagePolicy": EmergencyTriagePolicy.get_default_config(),
        "rasa_safe_hybrid.nlu.input_rails.InputRails": rails,
        "rasa_safe_hybrid.policies.llm_response_policy.LLMResponsePolicy": policy,
    }


def differences(shown: Dict[str, Any], code: Dict[str, Any], path: str = "") -> List[Tuple[str, Any, Any]]:
    found = []
    for key, value in shown.items():
        where = f"{path}{key}"
        if key not in code:
            found.append((where, value, "<not a key of the code>"))
        elif isinstance(value, dict) and isinstance(code[key], dict) and value:
            found += differences(value, code[key], f"{where}.")
        elif (
            value not in PLACEHOLDERS
            and value != code[key]
            and not (
                isinstance(value, (int, float))
                and isinstance(code[key], (int, float))
                and float(value) == float(code[key])
            )
        ):
            found.append((where, value, code[key]))
    return found


def test_the_page_documents_every_component_it_configures():
    assert set(documented()) == set(code_defaults())


@pytest.mark.parametrize("component", sorted(code_defaults()))
def test_the_documented_defaults_are_the_codes(component):
    shown = documented()[component]
    assert differences(shown, code_defaults()[component]) == []


def test_a_drifted_default_is_caught():
    shown = {"retrieval": {"threshold": 0.6}, "unknown_key": 1}
    code = {"retrieval": {"threshold": 0.5}}
    assert differences(shown, code) == [
        ("retrieval.threshold", 0.6, 0.5),
        ("unknown_key", 1, "<not a key of the code>"),
    ]
