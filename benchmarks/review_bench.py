"""The review page's server side on 10,000 stored conversations (part of ``make bench``).

Fills a SQLite tracker store (the project's RedactingSQLTrackerStore schema) with
N conversations of four kinds (a model answer, a rail that fired, a low-confidence
fallback, a plain greeting; 4-8 turns each), then measures:

- the first build of the review index (every conversation read once) and an
  incremental sync after one new turn;
- in process (the work the handlers do): the first page of the list, the list
  filtered to model answers and to one rail, one conversation read and turned into
  turns, p50 / p95 over repeated calls;
- over HTTP on loopback against a real ``rasa run`` with the review channel on that
  store: the same requests, p50 / p95 (server time plus loopback).

Target (issue 27): first page and one conversation each within 300 ms server time.

Usage: python -m benchmarks.review_bench [--conversations 10000] [--json results/review_bench.json] [--no-http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "review-bench-secret-0123456789"
REPEATS = 30


def template_events(kind: str, turns: int, start: float) -> List[Any]:
    """Events of one conversation, as the assistant stores them."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa_safe_hybrid.guardrails import RailsRecord, Verdict

    events: List[Any] = [ActionExecuted("action_listen", timestamp=start)]
    for n in range(turns):
        t = start + 10 * n + 1
        intent, confidence, fired = "greet", 0.95, []
        if kind == "model" and n % 2:
            intent, confidence = "open_question", 0.8
        elif kind == "rail" and n == 1:
            intent, confidence, fired = "guardrail_harmful", 1.0, [Verdict("harmful", True, "weapons")]
        elif kind == "fallback" and n == 0:
            intent, confidence = "nlu_fallback", 0.2
        parse = {"text": f"message {n} of a {kind} conversation", "intent": {"name": intent, "confidence": confidence},
                 "entities": []}
        RailsRecord(verdicts=fired, decisive=fired[0] if fired else None).to_parse_data(parse)
        events.append(UserUttered(parse["text"], parse["intent"], [], parse, timestamp=t))
        if intent in ("open_question", "nlu_fallback"):
            events += [ActionExecuted("action_llm_response", policy="LLMResponsePolicy", confidence=1.0, timestamp=t),
                       SlotSet("llm_trace", {"model": "smollm2", "outcome": "sent" if kind == "model" else "abstained",
                                             "new_tokens": 20, "latency_s": 0.5}, timestamp=t),
                       BotUttered("A reply of the model, one or two sentences long.", timestamp=t)]
        else:
            events += [ActionExecuted("utter_greet", policy="RulePolicy", confidence=1.0, timestamp=t),
                       BotUttered("Hello! I can help with orders, courses and health information.", timestamp=t)]
        events.append(ActionExecuted("action_listen", timestamp=t))
    return events


def fill(db: Path, count: int, seed: int = 7) -> Dict[str, Any]:
    """``count`` conversations in a fresh tracker store at ``db`` (rows written in bulk)."""
    import sqlalchemy as sa
    from rasa.shared.core.domain import Domain
    from rasa_safe_hybrid.stores.redacting_tracker_store import RedactingSQLTrackerStore
    from tqdm import tqdm

    domain = Domain.load(str(ROOT / "domain.yml"))
    store = RedactingSQLTrackerStore(domain, dialect="sqlite", db=str(db))
    rng = random.Random(seed)
    kinds = ["model", "rail", "fallback", "plain"]
    started = time.perf_counter()
    rows = 0
    batch: List[Dict[str, Any]] = []
    with store.engine.begin() as connection:
        for number in tqdm(range(count), desc="tracker store", unit="conversation"):
            kind = kinds[number % 4]
            for event in template_events(kind, rng.randint(4, 8), 1_700_000_000.0 + number * 60):
                data = event.as_dict()
                batch.append({"sender_id": f"bench-{number:05d}", "type_name": data["event"],
                              "timestamp": data["timestamp"], "intent_name": (data.get("parse_data") or {})
                              .get("intent", {}).get("name"), "action_name": data.get("name"),
                              "data": json.dumps(data)})
            if len(batch) > 5000:
                connection.execute(sa.insert(store.SQLEvent.__table__), batch)
                rows += len(batch)
                batch = []
        if batch:
            connection.execute(sa.insert(store.SQLEvent.__table__), batch)
            rows += len(batch)
    return {"conversations": count, "events": rows, "fill_s": round(time.perf_counter() - started, 1),
            "store": store}


def timed(function: Callable[[], Any], repeats: int = REPEATS) -> Dict[str, float]:
    """p50 / p95 / max in ms of ``repeats`` calls."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 1), "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1),
            "max_ms": round(samples[-1], 1)}


def in_process(store: Any, review_db: str, sender: str) -> Dict[str, Any]:
    from rasa_safe_hybrid.review.store import ReviewStore
    from rasa_safe_hybrid.review.turns import turns

    review = ReviewStore(review_db)
    started = time.perf_counter()
    indexed = review.sync(store.engine, progress=True)
    first_sync = round(time.perf_counter() - started, 1)

    def one() -> None:
        tracker = asyncio.run(store.retrieve_full_tracker(sender))
        turns([e.as_dict() for e in tracker.events])
        review.list_ratings(sender)

    return {
        "first_index_s": first_sync, "indexed": indexed,
        "sync_nothing_new": timed(lambda: review.sync(store.engine)),
        # what the list handler does: bring the index up to date, then read one page
        "first_page": timed(lambda: (review.sync(store.engine), review.list_conversations({}))),
        "model_filter": timed(lambda: review.list_conversations({"model": True})),
        "rail_filter_page_40": timed(lambda: review.list_conversations({"rail": "harmful"}, page=40)),
        "unreviewed_filter": timed(lambda: review.list_conversations({"unreviewed": True})),
        "one_conversation": timed(one),
    }


def over_http(work: Path, tracker_db: Path, review_db: str, sender: str) -> Dict[str, Any]:
    from scripts.harness import running_servers

    endpoints = (
        'action_endpoint:\n  url: "{actions_url}"\n  headers:\n    Authorization: Bearer ${ACTION_SERVER_TOKEN}\n'
        f"tracker_store:\n  type: rasa_safe_hybrid.stores.redacting_tracker_store.RedactingSQLTrackerStore\n"
        f"  dialect: sqlite\n  db: {tracker_db}\n"
    )
    channels = {"rasa_safe_hybrid.channels.review.ReviewInput": {"secret": SECRET, "db": review_db}}
    headers = {"Authorization": f"Bearer {SECRET}", "X-Reviewer": "bench"}

    def get(path: str) -> None:
        request = urllib.request.Request(base + path, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
            answer.read()

    with running_servers(work, endpoints=endpoints, channels=channels) as servers:
        base = f"{servers.rasa_url}/webhooks/review/api/"
        get("conversations")  # the index is already built in process; this only checks it
        return {"first_page": timed(lambda: get("conversations")),
                "model_filter": timed(lambda: get("conversations?model=1")),
                "one_conversation": timed(lambda: get(f"conversations/{sender}"))}


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "review_bench.json")
    parser.add_argument("--no-http", action="store_true", help="in process only (no trained model needed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        filled = fill(work / "tracker.db", args.conversations)
        store = filled.pop("store")
        review_db = f"sqlite:///{work / 'review.db'}"
        sender = f"bench-{args.conversations // 2:05d}"  # one conversation from the middle of the store
        result: Dict[str, Any] = {
            "command": "python -m benchmarks.review_bench" + (" --no-http" if args.no_http else ""),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            **filled,
            "in_process": in_process(store, review_db, sender),
        }
        if not args.no_http:
            result["http"] = over_http(work, work / "tracker.db", review_db, sender)
    worst = max(result["in_process"][k]["p95_ms"] for k in ("first_page", "one_conversation"))
    result["target_300ms_met"] = worst <= 300
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
