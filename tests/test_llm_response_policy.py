"""LLMResponsePolicy through Rasa's LocalModelStorage and ExecutionContext."""

from __future__ import annotations

import json

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException
from rasa_safe_hybrid.policies.llm_response_policy import PERSISTED_FILE, LLMResponsePolicy

from tests.conftest import ROOT
from tests.helpers import predicted_action

RESOURCE = Resource("llm_response_policy")


@pytest.fixture(scope="module")
def rasa_domain():
    return Domain.load(str(ROOT / "domain.yml"))


def _create(tmp_path, **overrides):
    config = {**LLMResponsePolicy.get_default_config(), **overrides}
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    return LLMResponsePolicy.create(config, storage, RESOURCE, context), storage, context, config


def _tracker(intent, *, after=None, loop=None):
    events = [ActionExecuted(ACTION_LISTEN_NAME)]
    if loop:
        events += [ActiveLoop(loop)]
    events += [UserUttered("text", intent={"name": intent, "confidence": 0.4})]
    if after:
        events += [ActionExecuted(after)]
    return DialogueStateTracker.from_events("someone", events)


_predicted = predicted_action


def test_persist_then_load_round_trip(tmp_path, rasa_domain):
    generation = {"model": ".cache/models", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    policy, storage, context, config = _create(tmp_path, generation=generation)
    assert policy.train([], rasa_domain) == RESOURCE
    with storage.read_from(RESOURCE) as path:
        record = json.loads((path / PERSISTED_FILE).read_text())
    assert record["model_id"] == ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record["generation"]["system_prompt"] == policy.settings.system_prompt
    loaded = LLMResponsePolicy.load(config, storage, RESOURCE, context)
    assert loaded.settings == policy.settings
    assert _predicted(loaded, _tracker("nlu_fallback"), rasa_domain) == "action_llm_response"


@pytest.mark.parametrize("intent", ["nlu_fallback", "out_of_scope", "chitchat"])
def test_trigger_intents_go_to_the_llm_action(tmp_path, rasa_domain, intent):
    policy, *_ = _create(tmp_path)
    assert _predicted(policy, _tracker(intent), rasa_domain) == "action_llm_response"


def test_structured_intents_and_forms_are_left_to_other_policies(tmp_path, rasa_domain):
    policy, *_ = _create(tmp_path)
    assert _predicted(policy, _tracker("check_order_status"), rasa_domain) is None
    assert _predicted(policy, _tracker("emergency"), rasa_domain) is None
    assert _predicted(policy, _tracker("chitchat", loop="return_form"), rasa_domain) is None


def test_listens_after_its_action(tmp_path, rasa_domain):
    policy, *_ = _create(tmp_path)
    tracker = _tracker("chitchat", after="action_llm_response")
    assert _predicted(policy, tracker, rasa_domain) == ACTION_LISTEN_NAME


def test_trigger_intents_are_configurable(tmp_path, rasa_domain):
    policy, *_ = _create(tmp_path, trigger_intents=["open_question"])
    assert _predicted(policy, _tracker("chitchat"), rasa_domain) is None
    assert _predicted(policy, _tracker("open_question"), rasa_domain) == "action_llm_response"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"trigger_intents": []}, "'trigger_intents' must be a non-empty list"),
        ({"action": "llm"}, "'action' must name a custom action"),
        ({"output_rails": ["spellcheck"]}, "'output_rails' must be a list of rails"),
        ({"on_output": {"error": "utter_x"}}, "'default' (required)"),
        ({"generation": {"temperature": 0.2}}, "`do_sample` is false"),
        ({"retrieval": {"threshold": 2}}, "'retrieval': `threshold` must be in (0, 1)"),
    ],
)
def test_bad_config_is_rejected(tmp_path, overrides, fragment):
    with pytest.raises(InvalidConfigException) as error:
        _create(tmp_path, **overrides)
    assert fragment in str(error.value)


def test_training_checks_the_domain(tmp_path, rasa_domain):
    policy, *_ = _create(tmp_path, action="action_not_in_domain", on_output={"default": "utter_nope"})
    with pytest.raises(InvalidConfigException) as error:
        policy.train([], rasa_domain)
    assert "action_not_in_domain" in str(error.value) and "utter_nope" in str(error.value)


def test_training_checks_the_dont_know_response_when_retrieval_is_on(tmp_path, rasa_domain):
    policy, *_ = _create(tmp_path, retrieval={"enabled": True, "dont_know_response": "utter_not_there"})
    with pytest.raises(InvalidConfigException) as error:
        policy.train([], rasa_domain)
    assert "utter_not_there" in str(error.value) and "dont_know_response" in str(error.value)
