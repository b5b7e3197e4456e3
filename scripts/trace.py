"""Prints why each turn of one conversation went where it went.

Reads the conversation from the tracker store configured in endpoints.yml and
prints, per user message: the (redacted) text, the intent and its confidence,
the input-rail verdicts, every action with the policy that chose it, the bot's
replies, and for LLM turns the model, tokens, latency and output-rail verdicts.

Usage: python scripts/trace.py SENDER_ID [--endpoints endpoints.yml] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
# Rasa expands every ${VAR} of the endpoints file; the trace reads only the tracker
# store, so the action server's secret is not needed here.
os.environ.setdefault("ACTION_SERVER_TOKEN", "not-used-by-trace")

from components.action_failure import failure_record  # noqa: E402 - after the path is set
from components.guardrails import RailsRecord, Verdict  # noqa: E402
from components.emergency import TRIAGE_ANSWER_KEY, TRIAGE_SLOT  # noqa: E402
from components.guardrails.record import EMERGENCY_CHECK_KEY  # noqa: E402


def _describe(verdict: Verdict) -> str:
    """``rail: reason``, with the source and, for a classifier, its score against its threshold."""
    text = f"{verdict.rail}: {verdict.reason} [{verdict.source}"
    if verdict.score is not None:
        text += f" {verdict.score:.3f} >= {verdict.threshold}"
    return text + "]"


def turns(events: List[Dict[str, Any]], trace_slot: Optional[str] = "llm_trace") -> List[Dict[str, Any]]:
    """Groups tracker events into turns that start with a user message."""
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
                result[-1]["triage"].append(f"answer: '{event.get('text')}' ({(parse.get('intent') or {}).get('name')})")
            result.append({
                "emergency_tier": check.get("tier"),
                **({"triage": [f"replayed after the answer '{replayed}': handled as "
                               f"'{(parse.get('intent') or {}).get('name')}'"]} if replayed else {}),
                "user": event.get("text"),
                "intent": (parse.get("intent") or {}).get("name"),
                "confidence": (parse.get("intent") or {}).get("confidence"),
                "input_rails": [_describe(v) for v in emergency.fired + rails.fired],
                "routed_to": rails.routed_to,
                "actions": [],
                "bot": [],
            })
        elif not result:
            continue
        elif kind == "action" and event.get("name") != "action_listen":
            result[-1]["actions"].append(f"{event.get('name')} <- {event.get('policy')} ({event.get('confidence')})")
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
            trace = event["value"]
            result[-1]["llm"] = {
                k: trace.get(k) for k in ("model", "outcome", "new_tokens", "latency_s", "tokens_per_s")
            }
            retrieval = trace.get("retrieval") or {}
            if retrieval:
                best = (retrieval.get("hits") or [{}])[0]
                result[-1]["llm"]["retrieval"] = {
                    "mode": retrieval.get("mode"), "sources": retrieval.get("sources") or [],
                    "best": f"{best.get('id')} {best.get('score')}" if best else None,
                    "threshold": retrieval.get("threshold"),
                    "withheld": [f"{w['id']} ({w['rail']}: {w['reason']})" for w in retrieval.get("withheld") or []],
                }
            if trace.get("small_talk"):
                result[-1]["llm"]["small_talk"] = trace["small_talk"]
            result[-1]["llm"]["output_rails"] = [
                _describe(v) for v in RailsRecord.from_dict(trace.get("before_generation")).fired
                + RailsRecord.from_dict(trace.get("output_rails")).fired
            ]
    return result


async def load_events(sender_id: str, endpoints: Path) -> List[Dict[str, Any]]:
    """The events of one conversation from the configured tracker store."""
    from rasa.core.tracker_store import TrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.utils.endpoints import read_endpoint_config

    config = read_endpoint_config(str(endpoints), "tracker_store")
    store = TrackerStore.create(config, Domain.load(str(ROOT / "domain.yml")))
    tracker = await store.retrieve_full_tracker(sender_id)
    if tracker is None:
        return []
    return [e.as_dict() for e in tracker.events]


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sender_id")
    parser.add_argument("--endpoints", type=Path, default=ROOT / "endpoints.yml")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml", help="Rasa config (for the trace slot)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    from rasa.shared.exceptions import InvalidConfigException

    from components.config import load_plugin_config

    try:
        trace_slot = load_plugin_config(args.config).trace_slot
    except InvalidConfigException as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    events = asyncio.run(load_events(args.sender_id, args.endpoints))
    if not events:
        print(f"no conversation '{args.sender_id}' in the tracker store of {args.endpoints}", file=sys.stderr)
        return 1
    result = turns(events, trace_slot)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for i, turn in enumerate(result, 1):
        print(f"[{i}] user: {turn['user']}")
        confidence = f"{turn['confidence']:.2f}" if isinstance(turn["confidence"], float) else turn["confidence"]
        print(f"    intent: {turn['intent']} ({confidence})")
        if turn.get("emergency_tier"):
            print(f"    emergency tier: {turn['emergency_tier']}")
        for note in turn.get("triage", []):
            print(f"    triage: {note}")
        for verdict in turn["input_rails"]:
            print(f"    input rail fired: {verdict}" + (f" -> {turn['routed_to']}" if turn["routed_to"] else ""))
        for action in turn["actions"]:
            print(f"    action: {action}")
        if "llm" in turn:
            llm = turn["llm"]
            retrieval = llm.get("retrieval")
            if retrieval:
                print(f"    retrieval: {retrieval['mode']} (best {retrieval['best']}, threshold "
                      f"{retrieval['threshold']}); sources {retrieval['sources']}")
                for withheld in retrieval.get("withheld") or []:
                    print(f"    passage withheld (untrusted text): {withheld}")
            if llm["new_tokens"] is None:
                print(f"    llm: {llm['outcome']} (the model was not asked)")
            else:
                print(f"    llm: {llm['model']} {llm['outcome']} {llm['new_tokens']} tokens "
                      f"{llm['latency_s']} s ({llm['tokens_per_s']} tok/s)")
            for verdict in llm["output_rails"]:
                print(f"    rail fired on the LLM turn: {verdict}")
            if llm.get("small_talk"):
                print(f"    small talk ({llm['small_talk']}): the fitting reply was sent")
        for failure in turn.get("action_failures", []):
            print(f"    action failed (the reply below was sent instead): {failure}")
        for text in turn["bot"]:
            print(f"    bot: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
