"""The plugin's custom action: LLM replies with generation off the event loop, output rails, trace.

It runs in the action server (rasa-sdk); an assistant's ``actions`` package
registers it by importing it (``from rasa_safe_hybrid.actions.llm_action import ActionLLMResponse``).

``LLMResponsePolicy`` predicts this action for open-ended turns. The action
builds the prompt from the PII-redacted user text and the last turns of the
conversation, generates in a worker thread (so the action server keeps
serving other requests), runs the output rails, and sends either the reply or
the domain response configured for the rail that fired. The per-turn trace
goes into a slot, so it is stored on the tracker with the conversation.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rasa_safe_hybrid import emergency, small_talk
from rasa_safe_hybrid.actions import triage_action
from rasa_safe_hybrid.config import ERROR_RESPONSE_KEY, PluginConfig, load_plugin_config, rasa_config_path
from rasa_safe_hybrid.generation import BACKENDS, Generation, Generator, get_generator
from rasa_safe_hybrid.generation.priority import yield_cpu
from rasa_safe_hybrid.guardrails import RailsRecord, text_for_model
from rasa_safe_hybrid.guardrails.record import EMERGENCY_CHECK_KEY
from rasa_safe_hybrid.retrieval import answer as retrieval
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

logger = logging.getLogger(__name__)
# One worker: local generation is CPU-bound and the model serves one request at a time.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")
# A remote server batches requests itself; these threads only wait on HTTP.
_REMOTE_EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="llm-remote")
# The rails (sentence encoder) run here, beside generation, never on the event loop.
_RAILS_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rails")
# Sent when the config itself cannot be read (so on_output is unknown).
UNAVAILABLE_RESPONSE = "utter_llm_unavailable"
# Extra seconds allowed for loading and tokenising on top of the generation timeout.
LOAD_GRACE_S = 120.0


class _InFlight:
    """LLM turns of this process that asked for generation and have not finished
    (only the event loop changes it, so no lock).
    """

    count = 0


def _generate(generator: Generator, nice: int, history: List[Dict[str, str]], prompt: str) -> Generation:
    """Runs in the executor: the thread first yields the CPU to the dialogue by ``nice`` (0: unchanged)."""
    if nice:
        yield_cpu(nice)
    return generator.generate(history, prompt)


def conversation_history(tracker: Tracker) -> List[Dict[str, str]]:
    """Earlier user and bot messages as chat turns (redacted), oldest first.

    The latest user message is not included: it is the new turn.
    """
    turns: List[Dict[str, str]] = []
    for event in tracker.applied_events():
        if event.get("event") == "user":
            text = text_for_model(event.get("parse_data"), event.get("text") or "")
            if text:
                turns.append({"role": "user", "content": text})
        elif event.get("event") == "bot" and event.get("text"):
            turns.append({"role": "assistant", "content": event["text"]})
    if turns and turns[-1]["role"] == "user":
        turns.pop()
    return turns


def unhandled_user_turns(tracker: Tracker) -> List[str]:
    """Earlier user messages (redacted) that no rail and no emergency check acted on.

    The check before generation reads them with the latest message, so a signal
    nobody caught one turn earlier is not lost; a turn a rail already refused or
    escalated is left out, so it does not block the conversation's next turns.
    """
    texts: List[str] = []
    user_events = [event for event in tracker.applied_events() if event.get("event") == "user"]
    for event in user_events[:-1]:  # the latest message is the new turn
        parse = event.get("parse_data") or {}
        handled = emergency.triage_answered(parse) or any(
            record is not None and record.decisive is not None
            for record in (RailsRecord.from_parse_data(parse), RailsRecord.from_dict(parse.get(EMERGENCY_CHECK_KEY)))
        )
        text = text_for_model(parse, event.get("text") or "")
        if text and not handled:
            texts.append(text)
    return texts


def check_before_generation(plugin: PluginConfig, message: Dict[str, Any], earlier: Sequence[str] = ()
                            ) -> Tuple[Optional[emergency.Assessment], RailsRecord]:
    """The emergency signal (unless the user already said "no" to the triage question about
    this message) and the ``before_generation`` rails, on the latest message and ``earlier``.
    """
    text = message.get("text") or text_for_model(message)
    assessment = None
    if plugin.emergency is not None and not emergency.triage_answered(message):
        assessment = plugin.emergency.assess(text, earlier)
        if assessment.tier is not None:
            return assessment, RailsRecord()
    return assessment, plugin.guardrails.check_before_generation(text, earlier)


def retrieve(plugin: PluginConfig, text: str, intent: Optional[str]
             ) -> Tuple[retrieval.RetrievalDecision, List[Dict[str, Any]]]:
    """The retrieval decision, without the passages the passage rails flag (indexed text is
    untrusted: an instruction inside a document is never put in the prompt or sent).
    """
    decision = retrieval.decide(plugin.policy.retrieval, text, intent)
    withheld = []
    for hit in decision.relevant:
        record = plugin.guardrails.check_passage(hit.passage.text, document=hit.passage.kind == "document")
        if record.decisive is not None:
            withheld.append({"id": hit.passage.id, "rail": record.decisive.rail, "reason": record.decisive.reason})
            logger.warning("Passage %s withheld: rail '%s' fired on it (%s).", hit.passage.id,
                           record.decisive.rail, record.decisive.reason)
    if withheld:
        decision = decision.withholding([w["id"] for w in withheld])
    return decision, withheld


def can_triage(domain: DomainDict) -> bool:
    """Whether the assistant's domain has the triage question: its response and its slot (a project
    that installed the plugin without them escalates a moderate signal instead).
    """
    return (emergency.Responses().triage in (domain.get("responses") or {})
            and emergency.TRIAGE_SLOT in (domain.get("slots") or {}))


class ActionLLMResponse(Action):
    """Answers an open-ended turn with the language model, inside the rails."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_llm_response"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        """One LLM turn: rails before generation, retrieval, generation, output rails, the reply and its trace."""
        from rasa.shared.exceptions import InvalidConfigException

        loop = asyncio.get_running_loop()
        try:  # the first call builds the rails (loads the encoder): off the event loop
            plugin: PluginConfig = await loop.run_in_executor(_RAILS_EXECUTOR, load_plugin_config, rasa_config_path())
        except InvalidConfigException as error:
            logger.error("LLM turn skipped, the plugin config is invalid: %s", error)
            dispatcher.utter_message(response=UNAVAILABLE_RESPONSE)
            return []
        message = tracker.latest_message or {}
        text = text_for_model(message)
        record = RailsRecord.from_parse_data(message)
        trace: Dict[str, Any] = {
            "route": "llm",
            "intent": (message.get("intent") or {}).get("name"),
            "confidence": (message.get("intent") or {}).get("confidence"),
            "input_rails": record.to_dict() if record else None,
            "backend": plugin.generation.backend,
            "model": plugin.generation.model_id,
        }
        # Fail closed before generating: the latest message and the last user turns
        # together (a crisis one message earlier, an attack split over turns).
        history = conversation_history(tracker)
        earlier = unhandled_user_turns(tracker)
        try:
            assessment, before = await loop.run_in_executor(
                _RAILS_EXECUTOR, check_before_generation, plugin, message, earlier)
        except Exception as error:  # noqa: BLE001 - rails that cannot run: fail closed, never generate
            logger.error("The rails before generation could not run (%s): failing closed.", error)
            trace.update(outcome="error", error=f"rails before generation: {str(error)[:280]}")
            dispatcher.utter_message(response=plugin.policy.response_for(ERROR_RESPONSE_KEY))
            return _trace_events(plugin.trace_slot, trace)
        if assessment is not None:
            trace["emergency_before_generation"] = assessment.to_dict()
            reason = assessment.record.decisive.reason if assessment.record.decisive else ""
            if assessment.tier == emergency.MODERATE and not can_triage(domain):
                logger.warning("Moderate emergency signal, but the domain has no triage question (%s, slot %s): "
                               "escalating instead (fail closed).", emergency.Responses().triage, emergency.TRIAGE_SLOT)
                assessment.tier = emergency.STRONG
            if assessment.tier == emergency.STRONG:
                response = plugin.policy.response_for("emergency", assessment.kind)
                logger.info("Emergency before generation (%s): %s sent, the model is not asked.", reason, response)
                trace["outcome"] = "blocked:emergency"
                dispatcher.utter_message(response=response)
                return _trace_events(plugin.trace_slot, trace)
            if assessment.tier == emergency.MODERATE:
                logger.info("Moderate emergency signal before generation (%s): the triage question is asked, "
                            "the model is not.", reason)
                trace["outcome"] = "triage"
                return triage_action.ask(dispatcher, tracker, assessment.kind) + _trace_events(plugin.trace_slot, trace)
        trace["before_generation"] = before.to_dict()
        if before.decisive:
            response = plugin.policy.response_for(before.decisive.rail, before.decisive.category)
            logger.info("Rail '%s' fired before generation (%s): %s sent, the model is not asked.",
                        before.decisive.rail, before.decisive.reason, response)
            trace["outcome"] = f"blocked:{before.decisive.rail}"
            dispatcher.utter_message(response=response)
            return _trace_events(plugin.trace_slot, trace)
        intent = (message.get("intent") or {}).get("name")
        decision, withheld = await loop.run_in_executor(_RAILS_EXECUTOR, retrieve, plugin, text, intent)
        trace["retrieval"] = decision.to_trace()
        if withheld:
            trace["retrieval"]["withheld"] = withheld
        if decision.mode == retrieval.ABSTAIN:
            response = plugin.policy.retrieval.dont_know_response
            logger.info("Nothing in the knowledge answers this (best below %s): %s sent.", decision.threshold, response)
            trace["outcome"] = "abstained"
            dispatcher.utter_message(response=response)
            return _trace_events(plugin.trace_slot, trace)
        if decision.mode == retrieval.EXTRACTED:
            logger.info("Answered with the passage %s itself.", decision.relevant[0].passage.id)
            trace["outcome"] = "extracted"
            dispatcher.utter_message(text=decision.extractive())
            return _trace_events(plugin.trace_slot, trace)
        remote = not BACKENDS[plugin.generation.backend].in_process
        executor = _REMOTE_EXECUTOR if remote else _EXECUTOR
        if _InFlight.count > plugin.generation.max_queue:
            response = plugin.policy.response_for(ERROR_RESPONSE_KEY)
            logger.warning("LLM busy: %d turns already in flight (max_queue %d); %s sent at once.",
                           _InFlight.count, plugin.generation.max_queue, response)
            trace.update(outcome="busy", in_flight=_InFlight.count)
            dispatcher.utter_message(response=response)
            return _trace_events(plugin.trace_slot, trace)
        _InFlight.count += 1
        try:
            generator = await asyncio.wait_for(
                loop.run_in_executor(executor, get_generator, plugin.generation), LOAD_GRACE_S
            )
            generation = await asyncio.wait_for(
                loop.run_in_executor(executor, _generate, generator, 0 if remote else plugin.generation.nice, history,
                                     decision.prompt(text)),
                plugin.generation.timeout_s + LOAD_GRACE_S,
            )
        except Exception as error:  # noqa: BLE001 - the user gets a safe reply, the log the reason
            logger.error("LLM generation failed: %s", error)
            trace.update(outcome="error", error=str(error)[:300])
            dispatcher.utter_message(response=plugin.policy.response_for(ERROR_RESPONSE_KEY))
            return _trace_events(plugin.trace_slot, trace)
        finally:
            _InFlight.count -= 1

        rails = await loop.run_in_executor(
            _RAILS_EXECUTOR, plugin.guardrails.check_output, generation.text, message.get("text") or "",
            plugin.generation.system_prompt, decision.passages, emergency.triage_answered(message),
        )
        trace.update(
            backend=plugin.generation.backend,
            new_tokens=generation.new_tokens,
            latency_s=round(generation.latency_s, 3),
            tokens_per_s=round(generation.tokens_per_s, 2),
            timed_out=generation.timed_out,
            output_rails=rails.to_dict(),
        )
        wording_rail = rails.decisive is not None and (
            rails.decisive.rail in plugin.policy.retrieval.passage_replaces or rails.decisive.rail == "small_talk")
        if wording_rail and rails.decisive is not None and decision.mode == retrieval.CHITCHAT:
            talk = small_talk.shared(plugin.guardrails.settings.encoder)
            act = await loop.run_in_executor(_RAILS_EXECUTOR, talk.act, text)
            logger.info("Output rail '%s' fired on a chit-chat reply (%s): the fitting reply for '%s' is sent.",
                        rails.decisive.rail, rails.decisive.reason, act)
            trace.update(outcome=f"replaced:{rails.decisive.rail}", small_talk=act)
            dispatcher.utter_message(text=small_talk.reply_of(act))
        elif (rails.decisive and decision.mode == retrieval.GROUNDED
                and rails.decisive.rail in plugin.policy.retrieval.passage_replaces):
            logger.info("Output rail '%s' fired on a grounded reply (%s): the passage is sent instead.",
                        rails.decisive.rail, rails.decisive.reason)
            trace["outcome"] = f"replaced:{rails.decisive.rail}"
            trace["passage_sent"] = True
            dispatcher.utter_message(text=decision.extractive())
        elif rails.decisive:
            response = plugin.policy.response_for(rails.decisive.rail, rails.decisive.category)
            logger.info(
                "Output rail '%s' fired (%s): reply replaced by %s.",
                rails.decisive.rail, rails.decisive.reason, response,
            )
            trace["outcome"] = f"replaced:{rails.decisive.rail}"
            dispatcher.utter_message(response=response)
        else:
            trace["outcome"] = "sent"
            dispatcher.utter_message(text=decision.with_sources(generation.text))
        return _trace_events(plugin.trace_slot, trace)


def _trace_events(slot: Optional[str], trace: Dict[str, Any]) -> List[EventType]:
    return [SlotSet(slot, trace)] if slot else []
