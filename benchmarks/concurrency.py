"""Do intent turns keep their latency while LLM turns run? Measured over REST.

Starts the real servers on loopback, then measures structured-intent turns
("where is my order 10002") from a few concurrent conversations, first alone
and then while other conversations keep sending open-ended questions that the
LLM answers. Request counts and time are bounded; traffic goes to 127.0.0.1
only.

Usage: python -m benchmarks.concurrency [--intent-turns 40] [--clients 4]
           [--llm-clients 2] [--json results/concurrency.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

from benchmarks.servers import Servers, running_servers

INTENT_TEXT = "where is my order 10002"
LLM_TEXTS = ["why is the sky blue?", "how do rainbows form?", "tell me a fun fact", "how do bees make honey"]
MAX_SECONDS = 600


def _percentiles(samples: List[float]) -> Dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(pick(0.95) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def _intent_turns(servers: Servers, turns: int, clients: int, tag: str) -> List[float]:
    def one(i: int) -> float:
        start = time.perf_counter()
        replies = servers.texts(f"bench-{tag}-{i % clients}", INTENT_TEXT)
        assert replies and replies[0].startswith("Order 10002"), replies
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(one, range(turns)))


def measure(servers: Servers, turns: int, clients: int, llm_clients: int) -> Dict[str, object]:
    """Intent-turn latency alone and under concurrent LLM load."""
    _intent_turns(servers, clients, clients, "warmup")
    servers.texts("bench-llm-warmup", LLM_TEXTS[0])  # loads the model in the action server
    alone = _intent_turns(servers, turns, clients, "alone")

    stop = threading.Event()
    llm_latencies: List[float] = []

    def llm_client(n: int) -> None:
        i = 0
        deadline = time.monotonic() + MAX_SECONDS
        while not stop.is_set() and time.monotonic() < deadline:
            start = time.perf_counter()
            servers.texts(f"bench-llm-{n}", LLM_TEXTS[i % len(LLM_TEXTS)])
            llm_latencies.append(time.perf_counter() - start)
            i += 1

    threads = [threading.Thread(target=llm_client, args=(n,), daemon=True) for n in range(llm_clients)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # let LLM turns get going
    loaded = _intent_turns(servers, turns, clients, "loaded")
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return {
        "intent_turns_alone": _percentiles(alone),
        "intent_turns_with_llm_load": _percentiles(loaded),
        "llm_turns_during_run": _percentiles(llm_latencies) if llm_latencies else {},
        "clients": clients,
        "llm_clients": llm_clients,
    }


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intent-turns", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--llm-clients", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, running_servers(Path(work)) as servers:
        report = measure(servers, args.intent_turns, args.clients, args.llm_clients)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
