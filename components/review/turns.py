"""A conversation's events grouped into turns, and what each turn did.

``make trace`` prints these turns; the review page shows them and rates them.
A turn starts with a user message and holds: the (stored, so redacted) text,
the intent and its confidence, every rail that fired (where, source, score,
threshold), the actions with the policy that chose them, the bot's replies,
the LLM trace (model, outcome, tokens, retrieval, output rails) and the
triage question, its answer and outcome.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from rasa_safe_hybrid.actions.action_failure import failure_record
from rasa_safe_hybrid.emergency import TRIAGE_ANSWER_KEY, TRIAGE_SLOT
from rasa_safe_hybrid.guardrails import RailsRecord, Verdict
from rasa_safe_hybrid.guardrails.record import EMERGENCY_CHECK_KEY

# An intent below this confidence (or Rasa's nlu_fallback) is "low confidence" on the review page.
LOW_CONFIDENCE = 0.5
ESCALATIONS = frozenset({"action_emergency_escalation", "utter_emergency", "utter_crisis_support"})
TRIAGE_ACTIONS = frozenset({"action_emergency_triage", "utter_emergency_triage"})
# The LLM trace's outcome when the model's own words were sent.
SENT = "sent"


def describe(verdict: Verdict) -> str:
    """``rail: reason``, with the source and, for a classifier, its score against its threshold."""
    text = f"{verdict.rail}: {verdict.reason} [{verdict.source}"
    if verdict.score is not None:
        text += f" {verdict.score:.3f} >= {verdict.threshold}"
    return text + "]"


def _fired(stage: str, verdicts: List[Verdict]) -> List[Dict[str, Any]]:
    return [{"stage": stage, "rail": v.rail, "reason": v.reason, "source": v.source, "category": v.category,
             "score": None if v.score is None else round(v.score, 4), "threshold": v.threshold}
            for v in verdicts]


def turns(events: List[Dict[str, Any]], trace_slot: Optional[str] = "llm_trace") -> List[Dict[str, Any]]:
    """Groups tracker events (``Event.as_dict()``) into turns that start with a user message."""
    result: List[Dict[str, Any]] = []
    for event in events:
        kind = event.get("event")
        if kind == "user":
            parse = event.get("parse_data") or {}
            rails = RailsRecord.from_parse_data(parse) or RailsRecord()
            emergency = RailsRecord.from_dict(parse.get(EMERGENCY_CHECK_KEY))
            check = parse.get(EMERGENCY_CHECK_KEY) or {}
            replayed = check.get(TRIAGE_ANSWER_KEY)
            if result and result[-1].get("triage") and not replayed:
                result[-1]["triage"].append(
                    f"answer: '{event.get('text')}' ({(parse.get('intent') or {}).get('name')})"
                )
            result.append({
                "timestamp": event.get("timestamp"),
                "emergency_tier": check.get("tier"),
                **({"triage": [f"replayed after the answer '{replayed}': handled as "
                               f"'{(parse.get('intent') or {}).get('name')}'"]} if replayed else {}),
                "user": event.get("text"),
                "intent": (parse.get("intent") or {}).get("name"),
                "confidence": (parse.get("intent") or {}).get("confidence"),
                "input_rails": [describe(v) for v in emergency.fired + rails.fired],
                "rails": _fired("emergency", emergency.fired) + _fired("input", rails.fired),
                "routed_to": rails.routed_to,
                "actions": [],
                "action_names": [],
                "bot": [],
            })
        elif not result:
            continue
        elif kind == "action" and event.get("name") != "action_listen":
            result[-1]["actions"].append(f"{event.get('name')} <- {event.get('policy')} ({event.get('confidence')})")
            result[-1]["action_names"].append(event.get("name"))
        elif kind == "bot":
            result[-1]["bot"].append(event.get("text"))
            failure = failure_record(event.get("metadata") or {})
            if failure:
                result[-1].setdefault("action_failures", []).append(
                    f"{failure.get('action')}: {failure.get('cause')}")
        elif kind == "slot" and event.get("name") == TRIAGE_SLOT:
            note = f"question asked ({event['value']})" if event.get("value") else "question closed"
            result[-1].setdefault("triage", []).append(note)
        elif kind == "rewind":
            result[-1].setdefault("triage", []).append("rewound (the answer replays a message)")
        elif kind == "slot" and trace_slot and event.get("name") == trace_slot and event.get("value"):
            _add_llm(result[-1], event["value"])
    return result


def _add_llm(turn: Dict[str, Any], trace: Dict[str, Any]) -> None:
    turn["llm"] = {k: trace.get(k) for k in ("model", "outcome", "new_tokens", "latency_s", "tokens_per_s")}
    retrieval = trace.get("retrieval") or {}
    if retrieval:
        best = (retrieval.get("hits") or [{}])[0]
        turn["llm"]["retrieval"] = {
            "mode": retrieval.get("mode"), "sources": retrieval.get("sources") or [],
            "best": f"{best.get('id')} {best.get('score')}" if best else None,
            "threshold": retrieval.get("threshold"),
            "withheld": [f"{w['id']} ({w['rail']}: {w['reason']})" for w in retrieval.get("withheld") or []],
        }
    if trace.get("small_talk"):
        turn["llm"]["small_talk"] = trace["small_talk"]
    before = RailsRecord.from_dict(trace.get("before_generation")).fired
    output = RailsRecord.from_dict(trace.get("output_rails")).fired
    turn["llm"]["output_rails"] = [describe(v) for v in before + output]
    turn["rails"] += _fired("before_generation", before) + _fired("output", output)


def model_answered(turn: Dict[str, Any]) -> bool:
    """Whether the model's own words were sent on this turn."""
    return (turn.get("llm") or {}).get("outcome") == SENT


def summary(turns_: List[Dict[str, Any]]) -> Dict[str, Any]:
    """What the review page filters a conversation by."""
    rails: Set[str] = {r["rail"] for t in turns_ for r in t["rails"]}
    return {
        "turns": len(turns_),
        "model_turns": sum(model_answered(t) for t in turns_),
        "rails": sorted(rails),
        "emergency": any(t.get("emergency_tier") == "strong" or ESCALATIONS & set(t["action_names"])
                         for t in turns_),
        "triage": any(t.get("triage") or t.get("emergency_tier") == "moderate"
                      or TRIAGE_ACTIONS & set(t["action_names"]) for t in turns_),
        "low_confidence": any(t["intent"] == "nlu_fallback" or (isinstance(t["confidence"], (int, float))
                                                                and t["confidence"] < LOW_CONFIDENCE)
                              for t in turns_),
        "replaced": any(str((t.get("llm") or {}).get("outcome") or "").startswith("replaced:") for t in turns_),
        "failed_action": any(t.get("action_failures") for t in turns_),
        "first_text": next((t["user"] for t in turns_ if t["user"]), ""),
    }
