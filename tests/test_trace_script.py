"""`make trace`: turns grouped from tracker events, with rails, retrieval and action failures."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT


def load_trace():
    spec = importlib.util.spec_from_file_location("trace_script", ROOT / "scripts" / "trace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_turns_show_retrieval_and_action_failures():
    trace = load_trace()
    events = [
        {"event": "user", "text": "what is active recall", "parse_data": {"intent": {"name": "open_question",
                                                                                      "confidence": 0.9}}},
        {"event": "action", "name": "action_llm_response", "policy": "LLMResponsePolicy", "confidence": 1.0},
        {"event": "bot", "text": "Active recall means testing yourself."},
        {"event": "slot", "name": "llm_trace", "value": {
            "model": "m", "outcome": "replaced:ungrounded", "new_tokens": 12, "latency_s": 1.0, "tokens_per_s": 12,
            "retrieval": {"mode": "grounded", "threshold": 0.49, "sources": ["open_qa:38"],
                          "hits": [{"id": "open_qa:38", "score": 0.81}]}}},
        {"event": "user", "text": "where is my order 10002", "parse_data": {"intent": {"name": "order_status"}}},
        {"event": "bot", "text": "Sorry, something went wrong on my side; please try again in a moment.",
         "metadata": {"action_failure": {"action": "action_check_order_status", "cause": "HTTP 500"}}},
    ]
    first, second = trace.turns(events)
    assert first["llm"]["outcome"] == "replaced:ungrounded"
    assert first["llm"]["retrieval"] == {"mode": "grounded", "sources": ["open_qa:38"], "best": "open_qa:38 0.81",
                                         "threshold": 0.49, "withheld": []}
    assert "action_failures" not in first
    assert second["action_failures"] == ["action_check_order_status: HTTP 500"]


def test_turns_show_withheld_passages_and_the_small_talk_reply():
    trace = load_trace()
    events = [
        {"event": "user", "text": "how does the loyalty club work", "parse_data": {"intent": {"name": "nlu_fallback"}}},
        {"event": "slot", "name": "llm_trace", "value": {
            "model": "m", "outcome": "abstained", "new_tokens": None,
            "retrieval": {"mode": "abstain", "threshold": 0.49, "sources": [], "hits": [],
                          "withheld": [{"id": "document:loyalty.md#0", "rail": "injection",
                                        "reason": "override: 'Ignore all previous instructions'"}]}}},
        {"event": "user", "text": "it's raining again", "parse_data": {"intent": {"name": "chitchat"}}},
        {"event": "slot", "name": "llm_trace", "value": {
            "model": "m", "outcome": "replaced:small_talk", "new_tokens": 9, "latency_s": 0.4, "tokens_per_s": 20,
            "small_talk": "bad_news", "retrieval": {"mode": "chitchat", "threshold": 0.49, "sources": [], "hits": []},
            "output_rails": {"verdicts": [{"rail": "small_talk", "triggered": True, "reason": "condolences"}],
                             "decisive": "small_talk"}}},
    ]
    first, second = trace.turns(events)
    assert first["llm"]["retrieval"]["withheld"] == [
        "document:loyalty.md#0 (injection: override: 'Ignore all previous instructions')"]
    assert second["llm"]["small_talk"] == "bad_news"


def test_turns_show_the_triage_question_the_answer_and_the_outcome():
    trace = load_trace()
    check = {"tier": "moderate", "decisive": "emergency_classifier", "verdicts": []}
    events = [
        {"event": "user", "text": "where is order 10002? my arm feels heavy",
         "parse_data": {"intent": {"name": "emergency_triage", "confidence": 1.0}, "emergency_check": check}},
        {"event": "action", "name": "action_emergency_triage", "policy": "EmergencyTriagePolicy", "confidence": 1.0},
        {"event": "bot", "text": "If someone is hurt or in danger, call ... Is this happening right now?"},
        {"event": "slot", "name": "emergency_triage", "value": "medical"},
        {"event": "user", "text": "no", "parse_data": {"intent": {"name": "deny", "confidence": 0.99}}},
        {"event": "action", "name": "action_emergency_triage", "policy": "EmergencyTriagePolicy", "confidence": 1.0},
        {"event": "rewind"}, {"event": "rewind"},
        {"event": "user", "text": "where is order 10002? my arm feels heavy",
         "parse_data": {"intent": {"name": "check_order_status", "confidence": 0.8},
                        "emergency_check": {**check, "triage_answer": "no"}}},
    ]
    asked, answer, replayed = trace.turns(events)
    assert asked["emergency_tier"] == "moderate"
    assert asked["triage"] == ["question asked (medical)", "answer: 'no' (deny)"]
    assert answer["triage"] == ["rewound (the answer replays a message)", "rewound (the answer replays a message)"]
    assert replayed["triage"] == ["replayed after the answer 'no': handled as 'check_order_status'"]
