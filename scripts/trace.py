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
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
# Rasa expands every ${VAR} of the endpoints file; the trace reads only the tracker
# store, so the action server's secret is not needed here.
os.environ.setdefault("ACTION_SERVER_TOKEN", "not-used-by-trace")

from rasa_safe_hybrid.review.turns import turns  # noqa: E402 - after the path is set


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
    from rasa_safe_hybrid.config import load_plugin_config

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
