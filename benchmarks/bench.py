"""`make bench`: latency, throughput and cost of the project's components.

Measured side by side in one run, printed as a table and saved as JSON:

- intent-turn latency p50/p95/p99 and throughput over REST at 1, 10 and 50
  concurrent conversations, for this project and for a plain-Rasa baseline
  (same NLU, no LLM policy, no rails, no emergency detector);
- the same at 10 conversations while LLM turns run concurrently;
- LLM turns over REST (grounded answers and small talk) at 1 and 10
  concurrent conversations: p50/p95 of all and of generated turns, and each
  turn's outcome from the LLM trace (sent, replaced, extracted, abstained, busy);
- LLM generation per backend on the same GGUF file, prompts and 2 threads:
  tokens/s, time to first token and reply time of the in-process
  ``transformers`` and ``llama_cpp`` backends and of llama.cpp's server;
- rail latency per turn, server memory with the model loaded, ``rasa train``
  wall time, cold start to the first answer.

All traffic goes to 127.0.0.1; request counts and time are bounded.

Usage: python -m benchmarks.bench [--quick] [--json results/bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import yaml

from benchmarks import rails_eval
from scripts.harness import MODEL, ROOT, TEST_TOKEN, Servers, running_servers

INTENT_TEXT = "where is my order 10002"
LLM_PROMPTS = ["why is the sky blue?", "how do rainbows form?", "tell me a fun fact", "how do bees make honey?",
               "hello, how are you today?", "can you give me some study tips?"]
BASELINE_DROP = (
    "rasa_safe_hybrid.nlu.emergency_detector.EmergencyDetector",
    "rasa_safe_hybrid.nlu.input_rails.InputRails",
    "rasa_safe_hybrid.policies.llm_response_policy.LLMResponsePolicy",
)
MAX_RUN_S = 300


def _quantile(ordered: List[float], q: float) -> float:
    """The ``q`` quantile of sorted values (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stats(latencies: List[float], wall_s: float) -> Dict[str, float]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(_quantile(ordered, 0.95) * 1000, 1), "p99_ms": round(_quantile(ordered, 0.99) * 1000, 1),
            "throughput_rps": round(len(ordered) / wall_s, 1)}


async def _load(url: str, concurrency: int, requests_total: int, tag: str) -> Dict[str, float]:
    import aiohttp

    latencies: List[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(requests_total):
        queue.put_nowait(i)
    timeout = aiohttp.ClientTimeout(total=120)

    async def worker(n: int, session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            start = time.perf_counter()
            async with session.post(f"{url}/webhooks/rest/webhook", headers={"Authorization": f"Bearer {TEST_TOKEN}"},
                                    json={"sender": f"bench-{tag}-{n}", "message": INTENT_TEXT}) as response:
                body = await response.json()
            assert body and body[0]["text"].startswith("Order 10002"), body
            latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(n, session) for n in range(concurrency))), MAX_RUN_S)
        wall = time.perf_counter() - start
    return _stats(latencies, wall)


def intent_latency(servers: Servers, levels: List[int], per_level: int, tag: str) -> Dict[str, Any]:
    """Intent-turn latency at each concurrency level."""
    asyncio.run(_load(servers.rasa_url, 2, 10, f"{tag}-warm"))
    return {str(c): asyncio.run(_load(servers.rasa_url, c, max(per_level, 2 * c), f"{tag}-{c}")) for c in levels}


# Messages the NLU routes to the LLM action (nlu_fallback or chitchat with this model):
# grounded questions, small talk, and one the knowledge cannot answer (abstains).
LLM_TURN_PROMPTS = ["what is active recall", "hello, how are you today?", "tell me something nice",
                    "what is machine learning", "do you like music", "how does a bill become law"]


def _llm_outcomes(servers: Servers, sender: str) -> List[str]:
    """Per user turn of one conversation, the LLM action's outcome (from its trace slot event),
    or ``not_llm`` when the turn was routed elsewhere."""
    outcomes: List[str] = []
    for event in servers.tracker(sender).get("events") or []:
        if event.get("event") == "user":
            outcomes.append("not_llm")
        elif event.get("event") == "slot" and event.get("name") == "llm_trace" and event.get("value") and outcomes:
            outcomes[-1] = str(event["value"].get("outcome"))
    return outcomes


def llm_turn_latency(servers: Servers, levels: List[int], turns: int = 30) -> Dict[str, Any]:
    """LLM turns over REST at each concurrency level: p50/p95 of every turn and of the turns
    the model generated for, and the outcomes (sent, replaced, extracted, abstained, busy).
    About ``turns`` turns per level, spread over its conversations."""
    result: Dict[str, Any] = {}
    for level in levels:
        turns_per_conversation = max(1, turns // level)
        took: Dict[str, List[float]] = {}
        lock = threading.Lock()

        def client(n: int, level: int = level, turns_per_conversation: int = turns_per_conversation,
                   lock: threading.Lock = lock, took: Dict[str, List[float]] = took) -> None:
            sender = f"bench-llmturn-{level}-{n}"
            for i in range(turns_per_conversation):
                start = time.perf_counter()
                servers.texts(sender, LLM_TURN_PROMPTS[(n + i) % len(LLM_TURN_PROMPTS)])
                with lock:
                    took.setdefault(sender, []).append(time.perf_counter() - start)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(level)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=MAX_RUN_S)
        every: List[float] = []
        generated: List[float] = []
        outcomes: Dict[str, int] = {}
        for sender, latencies in took.items():
            for latency, outcome in zip(latencies, _llm_outcomes(servers, sender), strict=False):
                every.append(latency)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome == "sent" or outcome.startswith("replaced"):
                    generated.append(latency)
        result[str(level)] = {"all": _percentiles(every), "generated": _percentiles(generated), "outcomes": outcomes}
    return result


def _percentiles(values: List[float]) -> Dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50_s": None, "p95_s": None}
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 2),
        "p95_s": round(_quantile(ordered, 0.95), 2),
    }


def with_llm_load(servers: Servers, concurrency: int, per_level: int, llm_clients: int) -> Dict[str, Any]:
    """Intent turns while ``llm_clients`` conversations keep sending LLM turns."""
    stop = threading.Event()
    llm: List[float] = []

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            start = time.perf_counter()
            servers.texts(f"bench-llm-{n}", LLM_TURN_PROMPTS[i % len(LLM_TURN_PROMPTS)])
            llm.append(time.perf_counter() - start)
            i += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(llm_clients)]
    for t in threads:
        t.start()
    time.sleep(2)
    intent = asyncio.run(_load(servers.rasa_url, concurrency, per_level, "loaded"))
    stop.set()
    for t in threads:
        t.join(timeout=120)
    return {"intent_turns": intent, "llm_turns_completed": len(llm),
            "llm_turn_p50_s": round(statistics.median(llm), 2) if llm else None}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    import psutil

    process = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 1e6, 1)


def _speed(generator: Any, prompts: List[str]) -> Dict[str, Any]:
    """Tokens/s, mean reply time and time to first token of one generator over ``prompts``."""
    generator.generate([], prompts[0])  # warm-up: first-call allocations are not speed
    runs = [generator.generate([], p) for p in prompts]
    tokens = sum(r.new_tokens for r in runs)
    seconds = sum(r.latency_s for r in runs)
    one = [_first_token_s(generator, p) for p in prompts]
    return {"tokens_per_s": round(tokens / seconds, 2), "reply_s_mean": round(seconds / len(runs), 2),
            "time_to_first_token_s": round(statistics.median(one), 3), "replies": [r.text for r in runs[:2]]}


def _first_token_s(generator: Any, prompt: str) -> float:
    """Time to the first token: a generation limited to one new token (prompt processing + one step)."""
    from rasa_safe_hybrid.generation import get_generator

    one = get_generator(generator.settings.with_overrides(max_new_tokens=1))
    return one.generate([], prompt).latency_s


def llm_speed(n_prompts: int) -> Dict[str, Any]:
    """Each backend on the same GGUF, prompts, greedy decoding and thread count, side by side.

    ``transformers`` and ``llama_cpp`` run in this process through the project's own
    generators (the same code the action server runs); ``llama_cpp_server`` is
    llama.cpp's OpenAI-compatible server (``.venv-llm``, 2 threads) reached by the
    ``openai`` backend over loopback, when that venv exists.
    """
    from rasa_safe_hybrid.config import load_plugin_config
    from rasa_safe_hybrid.generation import get_generator

    settings = load_plugin_config(ROOT / "config.yml").generation
    prompts = LLM_PROMPTS[:n_prompts]
    threads = 2
    gguf = {"model": settings.model, "gguf_file": settings.options.gguf_file}
    candidates = {  # llama_cpp first, so it never runs right after torch's threads were busy
        "llama_cpp": settings.with_overrides(backend="llama_cpp", n_threads=threads, **gguf),
        "transformers": settings.with_overrides(backend="transformers", torch_threads=threads, **gguf),
    }
    result: Dict[str, Any] = {"default": settings.backend, "threads": threads}
    for name, candidate in candidates.items():
        try:
            result[name] = _speed(get_generator(candidate), prompts)
        except RuntimeError as error:  # llama-cpp-python not installed, say
            result[name] = f"not measured: {error}"
    from scripts.harness import LLM_PYTHON, MODEL_ALIAS, running_llm_server

    if LLM_PYTHON.exists():
        with tempfile.TemporaryDirectory() as tmp, running_llm_server(Path(tmp)) as server:
            remote = settings.with_overrides(backend="openai", base_url=server.base_url, model=MODEL_ALIAS)
            result["llama_cpp_server"] = _speed(get_generator(remote), prompts)
    else:
        result["llama_cpp_server"] = "not measured: run `make llm-server-env`"
    speeds = {k: v["tokens_per_s"] for k, v in result.items() if isinstance(v, dict)}
    if "llama_cpp" in speeds:
        result["ratios"] = {f"{k}_vs_llama_cpp": round(v / speeds["llama_cpp"], 3) for k, v in speeds.items()
                            if k != "llama_cpp"}
    return result


def torch_threads() -> int:
    """The thread count torch uses, so llama.cpp gets the same (its default is half the cores)."""
    import torch

    return torch.get_num_threads()


def train_baseline(work: Path) -> tuple:
    """Trains the plain-Rasa baseline and, for comparison, times the project's training."""
    config = yaml.safe_load((ROOT / "config.yml").read_text())
    config["pipeline"] = [c for c in config["pipeline"] if c["name"] not in BASELINE_DROP]
    config["policies"] = [c for c in config["policies"] if c["name"] not in BASELINE_DROP]
    for policy in config["policies"]:
        if policy["name"] == "RulePolicy":
            policy["core_fallback_action_name"] = "action_default_fallback"
    (work / "baseline.yml").write_text(yaml.safe_dump(config))
    rasa = str(Path(sys.executable).parent / "rasa")
    timings = {}
    for name, cfg in (("baseline", work / "baseline.yml"), ("project", ROOT / "config.yml")):
        start = time.perf_counter()
        subprocess.run([rasa, "train", "--config", str(cfg), "--domain", "domain.yml", "--data", "data",
                        "--out", str(work), "--fixed-model-name", name, "--force"],
                       cwd=ROOT, check=True, capture_output=True)
        timings[name] = round(time.perf_counter() - start, 1)
    return work / "baseline.tar.gz", timings


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and levels")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench.json")
    args = parser.parse_args()
    levels = [1, 10] if args.quick else [1, 10, 50]
    # 300: the p95 of 100 requests at 10 conversations moved between 546 and 928 ms across
    # identical runs, too much for a p95 ratio.
    per_level = 20 if args.quick else 300
    report: Dict[str, Any] = {"levels": levels, "requests_per_level": per_level}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("training the baseline and timing rasa train ...", flush=True)
        baseline_model, report["rasa_train_s"] = train_baseline(work)
        for name, model in (("project", MODEL), ("baseline", baseline_model)):
            print(f"measuring {name} ...", flush=True)
            run_dir = work / name
            run_dir.mkdir()
            start = time.perf_counter()
            with running_servers(run_dir, model=model) as servers:
                servers.texts(f"cold-{name}", "hi")
                entry: Dict[str, Any] = {"cold_start_to_first_answer_s": round(time.perf_counter() - start, 1)}
                entry["intent_latency"] = intent_latency(servers, levels, per_level, name)
                if name == "project":
                    start = time.perf_counter()
                    servers.texts("first-llm", LLM_TURN_PROMPTS[0])
                    entry["first_llm_answer_s"] = round(time.perf_counter() - start, 1)
                    entry["with_llm_load"] = with_llm_load(servers, 10, per_level, 2)
                    entry["llm_turns"] = llm_turn_latency(servers, [1, 10])
                entry["rss_mb"] = {k: rss_mb(pid) for k, pid in servers.pids.items()}
                report[name] = entry
    ratio = {
        c: round(
            report["project"]["intent_latency"][c]["p50_ms"] / report["baseline"]["intent_latency"][c]["p50_ms"], 2
        )
        for c in report["project"]["intent_latency"]
    }
    report["p50_ratio_project_vs_baseline"] = ratio
    print("measuring the LLM backends ...", flush=True)
    report["llm"] = llm_speed(3 if args.quick else len(LLM_PROMPTS))
    report["rails"] = rails_eval.rail_latency(rails_eval.safe_texts())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(table(report))
    return 0


def table(report: Dict[str, Any]) -> str:
    """The report as a plain-text table."""
    rows = ["| setup | conversations | p50 ms | p95 ms | p99 ms | req/s |", "|---|---|---|---|---|---|"]
    for name in ("project", "baseline"):
        for level, s in report[name]["intent_latency"].items():
            rows.append(f"| {name} | {level} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | {s['throughput_rps']} |")
    loaded = report["project"]["with_llm_load"]["intent_turns"]
    rows.append(
        f"| project + 2 LLM conversations | 10 | {loaded['p50_ms']} | {loaded['p95_ms']} | {loaded['p99_ms']} | "
        f"{loaded['throughput_rps']} |"
    )
    llm = report["llm"]
    extra = [
        "",
        f"p50 ratio project/baseline: {report['p50_ratio_project_vs_baseline']}",
        *[
            f"LLM {name}: "
            + (
                f"{v['tokens_per_s']} tok/s, first token {v['time_to_first_token_s']} s, "
                f"{v['reply_s_mean']} s per reply"
                if isinstance(v, dict)
                else str(v)
            )
            for name, v in llm.items()
            if name in ("transformers", "llama_cpp", "llama_cpp_server")
        ],
        f"LLM ratios (tokens/s): {llm.get('ratios')}; default backend: {llm['default']}",
        f"intent turns at 10 conversations, p95 with 2 LLM conversations running / without: "
        f"{round(loaded['p95_ms'] / report['project']['intent_latency']['10']['p95_ms'], 2)}",
        *[
            f"LLM turns over REST at {level} conversations: all p50 {v['all']['p50_s']} s / p95 {v['all']['p95_s']} s; "
            f"generated p50 {v['generated']['p50_s']} s / p95 {v['generated']['p95_s']} s; outcomes {v['outcomes']}"
            for level, v in report["project"]["llm_turns"].items()
        ],
        f"rails per turn: median {report['rails']['median_ms']} ms, p99 {report['rails']['p99_ms']} ms",
        f"rasa train: {report['rasa_train_s']} s",
        f"cold start to first answer: project {report['project']['cold_start_to_first_answer_s']} s, "
        f"baseline {report['baseline']['cold_start_to_first_answer_s']} s; first LLM answer "
        f"{report['project']['first_llm_answer_s']} s",
        f"RSS MB: project {report['project']['rss_mb']}, baseline {report['baseline']['rss_mb']}",
    ]
    return "\n".join(rows + extra)


if __name__ == "__main__":
    sys.exit(main())
