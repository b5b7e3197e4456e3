"""Conversations through the whole assistant over REST: real Rasa and action server processes.

``replay(conversations)`` starts the trained assistant (scripts.harness, SQLite
tracker store in a temporary folder), sends each conversation's turns in order
under its own sender id, and returns one row per user turn: the replies, the
intent, and the LLM action's trace for the turn (None when a rule or form
answered it).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

TRACE_SLOT = "llm_trace"


def turn_traces(tracker: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per user turn of a tracker: its intent and the LLM trace set after it (if any)."""
    turns: List[Dict[str, Any]] = []
    for event in tracker.get("events") or []:
        if event.get("event") == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            turns.append({"intent": intent, "trace": None})
        elif event.get("event") == "slot" and event.get("name") == TRACE_SLOT and event.get("value") and turns:
            turns[-1]["trace"] = event["value"]
    return turns


def replay(conversations: Sequence[Sequence[str]], tag: str = "replay", progress: bool = True,
           model: Optional[Path] = None, rasa_config: Optional[Path] = None) -> List[Dict[str, Any]]:
    """Every conversation over REST; a row per user turn (``conversation``, ``turn``, ``text``,
    ``reply``, ``intent``, ``outcome``, ``trace``, ``latency_s``). ``rasa_config``: the config
    the action server reads its plugin settings from (default: the project's)."""
    from tqdm import tqdm

    from scripts.harness import MODEL, running_servers

    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=f"{tag}-") as work, running_servers(
            Path(work), model or MODEL, rasa_config=rasa_config) as servers:
        servers.say("warm-up", "what is machine learning")
        for c, turns in enumerate(tqdm(conversations, desc=tag, unit="conversation", disable=not progress)):
            sender = f"{tag}-{c}"
            replies, latencies = [], []
            for text in turns:
                started = time.perf_counter()
                replies.append(" ".join(servers.texts(sender, text)))
                latencies.append(time.perf_counter() - started)
            traces = turn_traces(servers.tracker(sender))
            for t, text in enumerate(turns):
                info = traces[t] if t < len(traces) else {"intent": None, "trace": None}
                trace = info["trace"]
                rows.append({"conversation": c, "turn": t, "text": text, "reply": replies[t],
                             "intent": info["intent"], "trace": trace,
                             "outcome": str(trace.get("outcome")) if trace else f"not_llm:{info['intent']}",
                             "history": list(turns[:t]), "latency_s": round(latencies[t], 3)})
    return rows
