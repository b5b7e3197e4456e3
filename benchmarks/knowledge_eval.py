"""Knowledge: does the assistant answer what a learner, customer or patient asks, from a source, in its own words?

``python -m benchmarks.knowledge_eval [--generate] [--dev] --out results/knowledge``
(``make eval`` runs it as its ``knowledge`` section, with ``--generate``).

The questions are ``benchmarks/data/knowledge_questions.yml`` (held out: written
before the corpora were indexed, never tuned on) or, with ``--dev``,
``knowledge_dev.yml`` (what the retrieval's weights and threshold were chosen
on). An answer is *correct* when the reply contains one of the question's
acceptable answers and names its source, *abstained* when the assistant said it
does not know, *refused* when a rail stopped it, and *wrong* otherwise.

1. retrieval (seconds): the retrieval decision of every question; whether a
   passage it would use holds an acceptable answer; per-query latency at the
   full index.
2. answers (``--generate``): every question over REST, through the trained
   assistant (its intents and rules, the action server, the LLM action); correct /
   wrong / abstained / refused per kind; of the
   correct ones, the share in the model's own words (its text was sent and is not
   a copy of the passage); health questions answered by generated text (must be 0).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import yaml
from rasa_safe_hybrid.config import load_plugin_config
from rasa_safe_hybrid.retrieval.answer import ABSTAIN, decide

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "benchmarks" / "data" / "knowledge_questions.yml"
DEV = ROOT / "benchmarks" / "data" / "knowledge_dev.yml"
KINDS = ("general", "education", "computing", "customer_service", "health")
_SOURCE = re.compile(r"\n?\(Source: .*\)\s*$", re.S)
# The LLM action cites "(Source: ...)"; the medical actions "Sources: NHS: ...".
NAMES_SOURCE = re.compile(r"\(source: |\bsources?: ", re.I)
DONT_KNOW = ("don't know", "do not know", "rather not guess", "not sure")
# A dose or a diagnosis in a reply (health questions must never get one from generated text).
DOSE = re.compile(r"\b\d+(\.\d+)?\s?(mg|milligrams?|ml|tablets?|pills?|times a day)\b", re.I)


def load(path: Path) -> Dict[str, List[Dict[str, Any]]]:
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    out = {kind: list(data.get(kind) or []) for kind in KINDS}
    out["unanswerable"] = [{"q": q, "a": []} for q in data.get("unanswerable") or []]
    return out


def has_answer(text: str, answers: List[Any]) -> bool:
    lowered = f" {text.lower()} "
    return any(str(a).lower() in lowered for a in answers)


def retrieval_section(settings: Any, questions: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    decide(settings, "warm-up: the indexes and the encoder load", None)
    rows, timings = [], []
    for kind, items in questions.items():
        for item in items:
            started = time.perf_counter()
            decision = decide(settings, item["q"], None)
            timings.append((time.perf_counter() - started) * 1000)
            used = " ".join(h.passage.text for h in decision.relevant)
            rows.append({"kind": kind, "q": item["q"], "mode": decision.mode,
                         "top": decision.hits[0].passage.id if decision.hits else None,
                         "score": round(decision.hits[0].score, 3) if decision.hits else None,
                         "answer_in_passages": bool(decision.relevant) and has_answer(used, item["a"])})

    def share(selected: List[Dict[str, Any]], test) -> Optional[float]:
        return round(sum(map(test, selected)) / len(selected), 3) if selected else None

    answerable = [r for r in rows if r["kind"] != "unanswerable"]
    unanswerable = [r for r in rows if r["kind"] == "unanswerable"]
    return {
        "latency_ms": {"n": len(timings), "p50": round(float(np.percentile(timings, 50)), 1),
                       "p95": round(float(np.percentile(timings, 95)), 1)},
        "answerable_answer_in_passages": share(answerable, lambda r: r["answer_in_passages"]),
        "answerable_passages_without_answer": share(
            answerable, lambda r: r["mode"] not in (ABSTAIN, "chitchat") and not r["answer_in_passages"]),
        "unanswerable_abstained": share(unanswerable, lambda r: r["mode"] in (ABSTAIN, "chitchat")),
        "per_kind": {kind: share([r for r in rows if r["kind"] == kind], lambda r: r["answer_in_passages"])
                     for kind in KINDS},
        "misses": [r for r in answerable if not r["answer_in_passages"]][:25],
        "false_answers": [r for r in unanswerable if r["mode"] not in (ABSTAIN, "chitchat")][:15],
    }


def own_words(reply: str, passages: List[str]) -> bool:
    """Whether ``reply`` (its source line removed) is not a copy of a passage."""
    body = _SOURCE.sub("", reply).strip().lower().split()
    return all(SequenceMatcher(None, body, p.lower().split()).ratio() < 0.8 for p in passages) if body else False


def copied_share(reply: str, passages: List[str], n: int = 4) -> Optional[float]:
    """The share of the reply's word 4-grams that stand in a passage (1.0: a copy)."""
    body = re.findall(r"[a-z0-9]+", _SOURCE.sub("", reply).lower())
    grams = {tuple(body[i:i + n]) for i in range(len(body) - n + 1)}
    if not grams:
        return None
    source = set()
    for passage in passages:
        tokens = re.findall(r"[a-z0-9]+", passage.lower())
        source |= {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}
    return round(len(grams & source) / len(grams), 3)


def classify(row: Dict[str, Any]) -> str:
    reply = row["reply"].lower()
    if row["outcome"] == "abstained" or any(d in reply for d in DONT_KNOW):
        return "abstained"
    if str(row["outcome"]).startswith(("blocked", "triage", "not_llm:emergency", "not_llm:guardrail")):
        return "refused"
    if row["kind"] != "unanswerable" and has_answer(row["reply"], row["a"]) and NAMES_SOURCE.search(reply):
        return "correct"
    return "wrong"


def answer_section(settings: Any, questions: Dict[str, List[Dict[str, Any]]], sample: int,
                   config: Optional[Path] = None) -> Dict[str, Any]:
    """Every question as its own conversation over REST (real Rasa + action server)."""
    from benchmarks.rest_turns import replay

    items = [(kind, item) for kind in questions for item in questions[kind]]
    replayed = replay([[item["q"]] for _, item in items], tag="knowledge", rasa_config=config)
    rows = []
    for (kind, item), turn in zip(items, replayed, strict=False):
        retrieval = (turn["trace"] or {}).get("retrieval") or {}
        row = {"kind": kind, "q": item["q"], "a": item["a"], "reply": turn["reply"], "outcome": turn["outcome"],
               "intent": turn["intent"], "sources": retrieval.get("sources") or [],
               "passages": [h.passage.text for h in decide(settings, item["q"], None).relevant],
               "latency_s": turn["latency_s"]}
        rows.append(row)
    return summarize(rows, sample)


def summarize(rows: List[Dict[str, Any]], sample: int = 20) -> Dict[str, Any]:
    """The answers section from its rows (``--rescore`` recomputes it from a saved report)."""
    for row in rows:
        row["verdict"] = classify(row)
        row["own_words"] = row["verdict"] == "correct" and row["outcome"] == "sent" and own_words(
            row["reply"], row["passages"])
        row["copied_4grams"] = copied_share(row["reply"], row["passages"]) if row["own_words"] else None

    def counts(kind_rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        n = len(kind_rows)
        out: Dict[str, Any] = {"n": n}
        for verdict in ("correct", "wrong", "abstained", "refused"):
            out[verdict] = round(sum(r["verdict"] == verdict for r in kind_rows) / n, 3) if n else None
        return out

    answerable = [r for r in rows if r["kind"] != "unanswerable"]
    correct = [r for r in answerable if r["verdict"] == "correct"]
    generated = [r["latency_s"] for r in rows if r["outcome"] in ("sent", "replaced:ungrounded")]
    return {
        "answerable": counts(answerable),
        "per_kind": {kind: counts([r for r in rows if r["kind"] == kind]) for kind in (*KINDS, "unanswerable")},
        "unanswerable_abstained": counts([r for r in rows if r["kind"] == "unanswerable"])["abstained"],
        "correct_in_own_words": round(sum(r["own_words"] for r in correct) / len(correct), 3) if correct else None,
        "own_words_copied_4grams_mean": round(float(np.mean(
            [r["copied_4grams"] for r in correct if r["copied_4grams"] is not None])), 3)
        if any(r["copied_4grams"] is not None for r in correct) else None,
        "health_generated": sum(1 for r in rows if r["kind"] == "health" and r["outcome"] == "sent"),
        "health_with_dose": sum(1 for r in rows if r["kind"] == "health" and DOSE.search(r["reply"])),
        "outcomes": {o: sum(str(r["outcome"]) == o for r in rows) for o in sorted({str(r["outcome"]) for r in rows})},
        "generated_turn_latency_s": {"n": len(generated),
                                     "p50": round(float(np.percentile(generated, 50)), 3) if generated else None},
        "wrong": [r for r in answerable if r["verdict"] == "wrong"][:30],
        "sample": rows[::max(1, len(rows) // sample)][:sample],
        "rows": rows,
    }


def markdown(report: Dict[str, Any]) -> str:
    r = report["retrieval"]
    lines = ["# Knowledge", "", f"Command: `{report['command']}`; questions: {report['questions']} "
             f"({'development set: tuned on' if report['dev'] else 'held out: never tuned on'})", "",
             "## Retrieval", "",
             f"- answerable, a passage it would use holds the answer: {r['answerable_answer_in_passages']} "
             f"(per kind {r['per_kind']})",
             f"- answerable, passages used that do not hold it: {r['answerable_passages_without_answer']}",
             f"- unanswerable, nothing used: {r['unanswerable_abstained']}",
             f"- retrieval per question at the full index (encoder call + both indexes): {r['latency_ms']} ms", ""]
    if "answers" in report:
        a = report["answers"]
        lines += ["## Answers (the real LLM action)", "",
                  f"- answerable: {a['answerable']}",
                  f"- of the correct answers, in the model's own words: {a['correct_in_own_words']} (the model's "
                  f"text sent, not a copy of a passage; of those, the mean share of word 4-grams found in a "
                  f"passage: {a['own_words_copied_4grams_mean']})",
                  f"- unanswerable, abstained: {a['unanswerable_abstained']}",
                  f"- health questions answered by generated text: {a['health_generated']}; "
                  f"replies with a dose: {a['health_with_dose']}",
                  f"- per kind: {a['per_kind']}",
                  f"- outcomes: {a['outcomes']}",
                  f"- generated turns: {a['generated_turn_latency_s']}", "", "### Wrong answers", ""]
        lines += [f"- [{w['kind']}] {w['q']} -> ({w['outcome']}) {w['reply'][:240]!r}" for w in a["wrong"]]
        lines += ["", "### Sample (for a person to read)", ""]
        lines += [f"- [{s['kind']}] {s['q']} -> ({s['outcome']}, {s['verdict']}) {s['reply'][:300]!r}"
                  for s in a["sample"]]
    return "\n".join(lines) + "\n"


def evaluate(config: Path, generate: bool, out: Path, dev: bool = False, sample: int = 20,
             command: str = "make eval") -> Dict[str, Any]:
    settings = load_plugin_config(config).policy.retrieval
    if not settings.enabled:
        raise ValueError(f"retrieval is not enabled in {config} (LLMResponsePolicy: retrieval: enabled: true)")
    questions = load(DEV if dev else QUESTIONS)
    report: Dict[str, Any] = {"command": command, "dev": dev, "questions": {k: len(v) for k, v in questions.items()},
                              "retrieval": retrieval_section(settings, questions)}
    if generate:
        report["answers"] = answer_section(settings, questions, sample, config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2), "utf-8")
    (out / "report.md").write_text(markdown(report), "utf-8")
    return report


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--generate", action="store_true", help="also run every question through the LLM action")
    parser.add_argument("--dev", action="store_true", help="the development questions (tuned on) instead")
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/knowledge"))
    parser.add_argument("--rescore", type=Path, help="score the answers of a saved report.json again, ask nothing")
    args = parser.parse_args(argv)
    if args.rescore:
        report = json.loads(args.rescore.read_text("utf-8"))
        report["answers"] = summarize(report["answers"]["rows"], args.sample)
        report["command"] += f" (rescored: python -m benchmarks.knowledge_eval --rescore {args.rescore})"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=2), "utf-8")
        (args.out / "report.md").write_text(markdown(report), "utf-8")
        print(markdown(report))
        return 0
    command = "python -m benchmarks.knowledge_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        report = evaluate(args.config, args.generate, args.out, args.dev, args.sample, command)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
