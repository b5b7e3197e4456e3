"""Answer quality: is an open question answered from the right source, or abstained on?

``python -m benchmarks.answer_quality [--generate] --out results/answer_quality``
(``make eval`` runs it as its ``answers`` section).

The questions are ``benchmarks/data/answer_quality.yml`` (answerable, partly
answerable, unanswerable, health). Two levels:

1. retrieval (seconds): for each question the retrieval decision of the LLM
   turn (``rasa_safe_hybrid.retrieval.answer.decide``). The score threshold is
   calibrated on the even-numbered answerable + unanswerable questions
   (highest balanced accuracy of "right passage" vs "abstain") and reported on
   the odd-numbered ones, which the threshold never saw; the configured
   threshold is reported beside it.
2. answers (``--generate``, minutes): every question through the real
   ``ActionLLMResponse`` with the configured model and rails. Scored
   automatically: answerable = the expected source is cited and every key fact
   is in the reply; unanswerable = no fact stated (abstained, or a reply the
   outcomes listed apart); health = generated text never sent (a curated
   passage, an abstention, or a reply a rail replaced). A sample of
   replies is printed for a person to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import yaml
from rasa_safe_hybrid.config import load_plugin_config
from rasa_safe_hybrid.retrieval.answer import decide
from rasa_safe_hybrid.retrieval.settings import RetrievalSettings

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "benchmarks" / "data" / "answer_quality.yml"


def load_questions(path: Path = QUESTIONS) -> Dict[str, List[Dict[str, Any]]]:
    data = yaml.safe_load(path.read_text("utf-8"))
    return {kind: [item if isinstance(item, dict) else {"q": item} for item in data.get(kind) or []]
            for kind in ("answerable", "partial", "unanswerable", "health")}


def _top(settings: RetrievalSettings, question: str) -> Tuple[Optional[str], float, float]:
    """(best passage id, its score, milliseconds the retrieval took) whatever the threshold."""
    started = time.perf_counter()
    decision = decide(replace(settings, threshold=1e-6), question, None)
    took_ms = (time.perf_counter() - started) * 1000
    if not decision.hits:
        return None, 0.0, took_ms
    return decision.hits[0].passage.id, decision.hits[0].score, took_ms


def retrieval_section(settings: RetrievalSettings, questions: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """Right-passage and abstention rates at the calibrated and the configured threshold."""
    decide(settings, "warm-up: the index and the encoder load", None)
    timed_a = [(q["q"], q["id"], *_top(settings, q["q"])) for q in questions["answerable"]]
    timed_u = [(q["q"], None, *_top(settings, q["q"])) for q in questions["unanswerable"]]
    timings_ms = [row[-1] for row in timed_a + timed_u]
    answerable = [row[:-1] for row in timed_a]
    unanswerable = [row[:-1] for row in timed_u]

    def rates(rows_a: List[Tuple], rows_u: List[Tuple], threshold: float) -> Dict[str, float]:
        right = np.mean([top == expected and score >= threshold for _, expected, top, score in rows_a])
        abstain = np.mean([score < threshold for *_, score in rows_u])
        return {"answerable_right_source": round(float(right), 3), "unanswerable_abstained": round(float(abstain), 3)}

    calibration_a, held_a = answerable[0::2], answerable[1::2]
    calibration_u, held_u = unanswerable[0::2], unanswerable[1::2]
    candidates = np.round(np.arange(0.20, 0.80, 0.01), 2)
    best = max(candidates, key=lambda t: sum(rates(calibration_a, calibration_u, t).values()))
    return {
        "latency_ms": {"n": len(timings_ms), "p50": round(float(np.percentile(timings_ms, 50)), 1),
                       "p95": round(float(np.percentile(timings_ms, 95)), 1)},
        "calibrated_threshold": float(best),
        "calibration_half": rates(calibration_a, calibration_u, best),
        "held_out_half_at_calibrated": rates(held_a, held_u, best),
        "configured_threshold": settings.threshold,
        "all_at_configured": rates(answerable, unanswerable, settings.threshold),
        "misses_at_configured": [
            {"q": q, "expected": e, "top": t, "score": round(s, 3)} for q, e, t, s in answerable
            if not (t == e and s >= settings.threshold)][:15],
        "false_answers_at_configured": [
            {"q": q, "top": t, "score": round(s, 3)} for q, _, t, s in unanswerable if s >= settings.threshold][:15],
    }


def _tracker(question: str) -> Any:
    from rasa_sdk import Tracker

    latest = {"text": question, "intent": {"name": "open_question", "confidence": 0.9}, "entities": []}
    events = [{"event": "action", "name": "action_listen"}, {"event": "user", "text": question, "parse_data": latest}]
    return Tracker("answer-quality", {}, latest, events, False, None, {}, "action_listen")


def answer_section(config: Path, questions: Dict[str, List[Dict[str, Any]]], sample: int) -> Dict[str, Any]:
    """Every question through the real LLM action; automatic scores and a sample."""
    import os

    from rasa_safe_hybrid.actions.llm_action import ActionLLMResponse
    from rasa_sdk.executor import CollectingDispatcher
    from tqdm import tqdm

    os.environ["ASSISTANT_RASA_CONFIG"] = str(config)
    action = ActionLLMResponse()
    rows = []
    items = [(kind, item) for kind in questions for item in questions[kind]]
    for kind, item in tqdm(items, desc="answers", unit="q"):
        dispatcher = CollectingDispatcher()
        start = time.perf_counter()
        events = asyncio.run(action.run(dispatcher, _tracker(item["q"]), {}))
        trace = next((e["value"] for e in events if e.get("event") == "slot"), {}) or {}
        reply = " ".join(m.get("text") or m.get("response") or "" for m in dispatcher.messages)
        rows.append({"kind": kind, "q": item["q"], "expected": item.get("id"), "facts": item.get("facts") or [],
                     "reply": reply, "outcome": trace.get("outcome"),
                     "sources": (trace.get("retrieval") or {}).get("sources") or [],
                     "latency_s": round(time.perf_counter() - start, 3)})

    def share(kind: str, test) -> Optional[float]:
        selected = [r for r in rows if r["kind"] == kind]
        return round(sum(map(test, selected)) / len(selected), 3) if selected else None

    def correct(r: Dict[str, Any]) -> bool:
        return r["expected"] in r["sources"] and all(str(f).lower() in r["reply"].lower() for f in r["facts"])

    def abstained(r: Dict[str, Any]) -> bool:
        return r["outcome"] == "abstained"

    def curated_only(r: Dict[str, Any]) -> bool:  # generated text never reached the user
        return r["outcome"] != "sent"

    latencies = [r["latency_s"] for r in rows if r["outcome"] in ("sent", "replaced:ungrounded")]
    return {
        "answerable_correct_with_source": share("answerable", correct),
        # whatever reached the user passed the ungrounded rail; the score is the source
        "partial_right_source": share("partial", lambda r: r["expected"] in r["sources"]),
        "unanswerable_abstained": share("unanswerable", abstained),
        "health_answered_without_curated_source": sum(
            1 for r in rows if r["kind"] == "health" and not curated_only(r)),
        "outcomes": {o: sum(r["outcome"] == o for r in rows) for o in sorted({str(r["outcome"]) for r in rows})},
        "generated_turn_latency_s": {"n": len(latencies),
                                     "p50": round(float(np.percentile(latencies, 50)), 3) if latencies else None},
        "sample": rows[::max(1, len(rows) // sample)][:sample],
        "rows": rows,
    }


def markdown(report: Dict[str, Any]) -> str:
    r = report["retrieval"]
    lines = ["# Answer quality", "", f"Command: `{report['command']}`; questions: {report['questions']}", "",
             "## Retrieval", "",
             f"Threshold calibrated on half the questions: {r['calibrated_threshold']} "
             f"(calibration half {r['calibration_half']}; the other half, which it never saw: "
             f"{r['held_out_half_at_calibrated']}).",
             f"Configured threshold {r['configured_threshold']}: {r['all_at_configured']}.",
             f"Retrieval per question (encoder call + search, index loaded): {r['latency_ms']} ms.", ""]
    if "answers" in report:
        a = report["answers"]
        lines += ["## Answers (the real LLM action)", "",
                  f"- answerable, correct with the right source cited: {a['answerable_correct_with_source']}",
                  f"- partly answerable, right source cited: {a['partial_right_source']}",
                  f"- unanswerable, abstained: {a['unanswerable_abstained']}",
                  "- health questions answered by generated text: "
                  f"{a['health_answered_without_curated_source']}",
                  f"- outcomes: {a['outcomes']}",
                  f"- generated turns: {a['generated_turn_latency_s']}", "", "### Sample (for a person to read)", ""]
        for row in a["sample"]:
            lines.append(f"- [{row['kind']}] {row['q']} -> ({row['outcome']}) {row['reply'][:300]!r}")
    return "\n".join(lines) + "\n"


def evaluate(config: Path, generate: bool, out: Path, questions_path: Path = QUESTIONS, sample: int = 12,
             command: str = "make eval") -> Dict[str, Any]:
    """The report (written to ``out``): retrieval, and with ``generate`` the answers."""
    settings = load_plugin_config(config).policy.retrieval
    if not settings.enabled:
        raise ValueError(f"retrieval is not enabled in {config} (LLMResponsePolicy: retrieval: enabled: true)")
    questions = load_questions(questions_path)
    report: Dict[str, Any] = {"command": command, "questions": {k: len(v) for k, v in questions.items()},
                              "retrieval": retrieval_section(settings, questions)}
    if generate:
        report["answers"] = answer_section(config, questions, sample)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2), "utf-8")
    (out / "report.md").write_text(markdown(report), "utf-8")
    return report


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--generate", action="store_true", help="also run every question through the LLM action")
    parser.add_argument("--sample", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("results/answer_quality"))
    args = parser.parse_args(argv)
    command = "python -m benchmarks.answer_quality " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        report = evaluate(args.config, args.generate, args.out, args.questions, args.sample, command)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
