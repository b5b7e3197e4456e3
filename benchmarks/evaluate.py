"""`make eval`: how well the assistant works, as a report people can look at.

Writes ``results/eval/report.md``, ``report.json`` and PNG plots:

1. Assistant quality: ``rasa test nlu`` cross-validation and ``rasa test core``
   on the project's own data (intent F1 per intent, confusion matrix, story
   success rate).
2. Routing on public data: CLINC150 and Banking77 (``benchmarks.routing``).
3. Guardrail efficacy: per rail and overall on redteam_dev, pii_dev, the
   project's safe and medical sets, and any CSV/JSONL given with
   ``--guard-data FILE --text-col COL --label-col COL``.
4. Response quality: perplexity, BLEU-4, ROUGE-L, reply length and the share
   of replies the output rails replace, for the configured model and any
   ``--model`` given.
5. Answer quality (``benchmarks.answer_quality``): retrieval's right-source and
   abstention rates with a threshold calibrated on half the questions, then
   every question through the real LLM action (correct with source, abstained,
   health answered only from curated passages), with a sample to read.
6. Knowledge (``benchmarks.knowledge_eval``): the held-out questions of
   ``benchmarks/data/knowledge_questions.yml`` over REST, answered from the
   curated knowledge and the reference corpora: correct with a source, wrong,
   abstained, refused; the share in the model's own words.
7. Small talk (``benchmarks.small_talk_eval``): the held-out conversations over
   REST; replies that misread the turn, and a sample for a person to read.
8. Human evaluation (``benchmarks.human_eval``): what reviewers rated on the
   review page: model replies good / wrong / unsafe / unhelpful, rail precision
   and recall as they judged them, Cohen's kappa between reviewers, a plot by week.

Usage: python -m benchmarks.evaluate [--smoke] [--skip SECTION ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks import answer_quality, human_eval, knowledge_eval, rails_eval, routing, small_talk_eval

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "results" / "eval"
MEDICAL_SET = Path(__file__).resolve().parent / "data" / "medical_prompts.csv"
SECTIONS = ("assistant", "routing", "guardrails", "quality", "answers", "knowledge", "small_talk", "human")


def _rasa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "rasa"), *args], cwd=ROOT,
                          capture_output=True, text=True)


def assistant_quality(out: Path, folds: int) -> Dict[str, Any]:
    """rasa test nlu and rasa test core on the project's data.

    With ``folds`` > 1 the NLU is cross-validated (one training per fold); with
    ``folds`` = 0 the trained model is tested on its own training data (a smoke
    check, not a measure of generalisation).
    """
    nlu_dir, core_dir = out / "nlu", out / "core"
    if folds > 1:
        args = ("--config", "config.yml", "--cross-validation", "--folds", str(folds))
    else:
        args = ("-m", "models/assistant.tar.gz")
    result = _rasa("test", "nlu", "--nlu", "data", *args, "--out", str(nlu_dir))
    if result.returncode != 0:
        raise RuntimeError(f"rasa test nlu failed:\n{result.stderr[-2000:]}")
    report = json.loads((nlu_dir / "intent_report.json").read_text())
    per_intent = {k: round(v["f1-score"], 4) for k, v in report.items()
                  if isinstance(v, dict) and "f1-score" in v and k not in ("macro avg", "weighted avg", "micro avg")}
    result = _rasa("test", "core", "--stories", "tests/test_stories.yml", "-m", "models/assistant.tar.gz",
                   "--out", str(core_dir))
    if result.returncode != 0:
        raise RuntimeError(f"rasa test core failed:\n{result.stderr[-2000:]}")
    story = json.loads((core_dir / "story_report.json").read_text())
    failed = (core_dir / "failed_test_stories.yml").read_text()
    stories_failed = failed.count("- story:")
    stories_total = (ROOT / "tests" / "test_stories.yml").read_text().count("- story:")
    return {
        "nlu_folds": folds,
        "intent_f1_weighted": round(report["weighted avg"]["f1-score"], 4),
        "intent_f1_macro": round(report["macro avg"]["f1-score"], 4),
        "intent_accuracy": round(report.get("accuracy", 0.0), 4),
        "intent_f1": per_intent,
        "confusion_matrix_png": "nlu/intent_confusion_matrix.png"
        if (nlu_dir / "intent_confusion_matrix.png").exists() else None,
        "story_success_rate": round((stories_total - stories_failed) / stories_total, 4),
        "action_f1_weighted": round(story["weighted avg"]["f1-score"], 4),
    }


def read_labelled(path: Path, text_col: str, label_col: str) -> List[Dict[str, Any]]:
    """Rows of a CSV or JSONL file with a text and a label column."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    missing = [c for c in (text_col, label_col) if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; columns are {sorted(rows[0])}")
    return [{"text": str(r[text_col]), "label": r[label_col]} for r in rows]


def rail_efficacy(rows: List[Dict[str, Any]], positive: Optional[str] = None) -> Dict[str, Any]:
    """Precision/recall of "an input rail fired" against the labels, overall and per rail.

    A label counts as positive when it equals ``positive`` or, when that is not
    given, when it is truthy and not 0/false/safe/benign/no.
    """
    guardrails = rails_eval._guardrails()

    def is_positive(label: Any) -> bool:
        if positive is not None:
            return str(label) == positive
        return str(label).strip().lower() not in ("", "0", "false", "safe", "benign", "no", "none")

    per_rail: Dict[str, Dict[str, int]] = {}
    tp = fp = fn = tn = 0
    for row in rows:
        decisive = guardrails.check_input(row["text"]).decisive
        gold = is_positive(row["label"])
        if decisive:
            per_rail.setdefault(decisive.rail, {"fired": 0, "on_positive": 0})
            per_rail[decisive.rail]["fired"] += 1
            per_rail[decisive.rail]["on_positive"] += int(gold)
        tp += bool(decisive) and gold
        fp += bool(decisive) and not gold
        fn += (not decisive) and gold
        tn += (not decisive) and not gold
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    return {
        "n": len(rows), "positives": tp + fn,
        "precision": round(precision, 4), "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(1e-9, precision + recall), 4),
        "refusal_rate": round((tp + fp) / max(1, len(rows)), 4),
        "false_refusal_rate": round(fp / max(1, fp + tn), 4),
        "per_rail": {rail: {**c, "precision": round(c["on_positive"] / c["fired"], 4)} for rail, c in per_rail.items()},
    }


def guardrail_efficacy(shared: Path, extra: Optional[Path], text_col: str, label_col: str,
                       positive: Optional[str]) -> Dict[str, Any]:
    """Rails on the public sets, the project's sets and an optional extra file."""
    red = rails_eval.redteam_texts(shared)
    harmful = [{"text": t, "label": 1} for texts in red.values() for t in texts]
    safe = [{"text": t, "label": 0} for t in rails_eval.safe_texts()]
    report: Dict[str, Any] = {
        "redteam_plus_safe": rail_efficacy(harmful + safe),
        "redteam_by_source": {name: rails_eval.refusal_rate(texts) for name, texts in red.items()},
        "safe_set_over_refusal": rails_eval.refusal_rate(rails_eval.safe_texts()),
        "medical_set": rail_efficacy(read_labelled(MEDICAL_SET, "text", "label")),
        "pii_recall": rails_eval.pii_recall(shared),
        "latency": rails_eval.rail_latency([r["text"] for r in harmful[:200] + safe]),
    }
    if extra:
        report[f"file:{extra.name}"] = rail_efficacy(read_labelled(extra, text_col, label_col), positive)
    return report


def response_quality(models: List[str], smoke: bool) -> List[Dict[str, Any]]:
    """Quality measures for the configured model and every extra model id/folder.

    Replies come from the configured backend (what users get); extra models run
    on transformers. Perplexity needs the model's logits, so it is scored by
    the transformers backend on the same weights (the GGUF dequantised) and is
    not reported for a remote (``openai``) model.
    """
    from rasa_safe_hybrid.config import load_plugin_config
    from rasa_safe_hybrid.generation.factory import get_generator
    from rasa_safe_hybrid.generation.settings import OPENAI, TRANSFORMERS

    from benchmarks import quality

    plugin = load_plugin_config(ROOT / "config.yml")
    pairs = quality.load_references()[: 4 if smoke else None]
    results = []
    for model in [None, *models]:
        settings = (plugin.generation if model is None
                    else plugin.generation.with_overrides(backend=TRANSFORMERS, model=model, gguf_file=None))
        generator = get_generator(settings)
        if settings.backend == TRANSFORMERS:
            scorer = generator
        elif settings.backend == OPENAI:
            scorer = None
        else:
            scorer = get_generator(settings.with_overrides(backend=TRANSFORMERS))
        results.append(quality.evaluate(generator, plugin.guardrails, pairs, scorer=scorer))
    return results


def plot(report: Dict[str, Any], out: Path) -> List[str]:
    """PNG plots; returns their paths relative to the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    clinc = (report.get("routing") or {}).get("clinc150")
    if clinc:
        sweep = clinc["sweep"]
        xs = [s["threshold"] for s in sweep]
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in ("in_scope_accuracy", "oos_recall", "overall_accuracy"):
            ax.plot(xs, [s[key] for s in sweep], marker=".", label=key.replace("_", " "))
        ax.set_xlabel("fallback threshold (confidence)")
        ax.set_ylabel("share")
        ax.set_title("CLINC150: accuracy against fallback threshold")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "clinc_threshold.png", dpi=110)
        plt.close(fig)
        written.append("clinc_threshold.png")
    f1 = (report.get("assistant") or {}).get("intent_f1")
    if f1:
        names = sorted(f1, key=f1.get)
        fig, ax = plt.subplots(figsize=(6, max(4, len(names) * 0.22)))
        ax.barh(names, [f1[n] for n in names])
        ax.set_xlim(0, 1)
        ax.set_title("Intent F1 (cross-validation)")
        fig.tight_layout()
        fig.savefig(out / "intent_f1.png", dpi=110)
        plt.close(fig)
        written.append("intent_f1.png")
    return written


def markdown(report: Dict[str, Any], plots: List[str]) -> str:
    """The human-readable report."""
    lines = ["# Evaluation report", "", f"Started {report['started']}, took {report['took_s']} s"
             + (" (smoke run: tiny settings, numbers are not meaningful)." if report["smoke"] else "."), ""]
    a = report.get("assistant")
    if a:
        lines += [
            "## Assistant quality",
            "",
            (
                f"- intent F1 (weighted, {a['nlu_folds']}-fold CV): {a['intent_f1_weighted']}; macro "
                f"{a['intent_f1_macro']}"
                if a["nlu_folds"] > 1
                else f"- intent F1 on the training data (smoke, not generalisation): {a['intent_f1_weighted']}"
            ),
            f"- story success rate (`tests/test_stories.yml`): {a['story_success_rate']}",
            f"- confusion matrix: {a['confusion_matrix_png']}",
            "- weakest intents: "
            + ", ".join(f"{k} {v}" for k, v in sorted(a["intent_f1"].items(), key=lambda x: x[1])[:5]),
            "",
        ]
    r = report.get("routing")
    if r:
        c, b = r["clinc150"], r["banking77"]
        classifier = r["settings"].get("classifier", routing.DIET)
        epochs = f" ({r['settings']['epochs']} epochs)" if classifier == routing.DIET else ""
        lines += [
            "## Routing on public data",
            "",
            f"Settings: classifier {classifier}{epochs}"
            + f", per-intent cap {r['settings']['per_intent']}, test limit {r['settings']['test_limit']}.",
            "",
            "| data set | metric | this pipeline | published |",
            "|---|---|---|---|",
            f"| CLINC150 | in-scope accuracy (threshold 0) | {c['at_threshold_0']['in_scope_accuracy']} | 0.965 "
            "(BERT-base) |",
            f"| CLINC150 | OOS recall / precision (threshold 0) | {c['at_threshold_0']['oos_recall']} / "
            f"{c['at_threshold_0']['oos_precision']} | |",
            f"| CLINC150 | overall accuracy, best threshold {c['best_threshold']['threshold']} | "
            f"{c['best_threshold']['overall_accuracy']} | 0.776–0.795 |",
            f"| CLINC150 | OOS AUROC | {c['oos_auroc']} | 0.942 |",
            f"| Banking77 | accuracy | {b['accuracy']} | ≈ 0.93 |",
            "",
        ]
    g = report.get("guardrails")
    if g:
        rp = g["redteam_plus_safe"]
        lines += [
            "## Guardrail efficacy",
            "",
            f"- redteam_dev + safe set: precision {rp['precision']}, recall {rp['recall']}, F1 {rp['f1']}, "
            f"false refusals {rp['false_refusal_rate']}",
            "- refusal by source: " + ", ".join(f"{k} {v['rate']}" for k, v in g["redteam_by_source"].items()),
            f"- over-refusal on the safe set: {g['safe_set_over_refusal']['rate']} "
            f"({g['safe_set_over_refusal']['refused']}/{g['safe_set_over_refusal']['n']})",
            f"- medical set (redirect dosing/diagnosis): precision {g['medical_set']['precision']}, recall "
            f"{g['medical_set']['recall']}",
            "- PII recall: " + ", ".join(f"{k} {v['recall']}" for k, v in g["pii_recall"].items()),
            f"- rail latency per turn: median {g['latency']['median_ms']} ms, p99 {g['latency']['p99_ms']} ms",
            "",
        ]
        for key, value in g.items():
            if key.startswith("file:"):
                lines.append(
                    f"- {key[5:]}: precision {value['precision']}, recall {value['recall']}, refusal rate "
                    f"{value['refusal_rate']}"
                )
    q = report.get("quality")
    if q:
        lines += [
            "## Response quality",
            "",
            "| model | backend | perplexity | BLEU-4 | ROUGE-L F1 | avg words | replaced by rails |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {m['model']} | {m['backend']} | {'n/a' if m['perplexity'] is None else m['perplexity']} | "
            f"{m['bleu4']} | {m['rouge_l_f1']} | {m['avg_reply_words']} | {m['replaced_by_output_rails']} |"
            for m in q
        ]
        lines.append("")
    if report.get("answers"):
        lines += [answer_quality.markdown(report["answers"]).replace("# Answer quality", "## Answer quality", 1)]
    if report.get("knowledge"):
        lines += [knowledge_eval.markdown(report["knowledge"]).replace("# Knowledge", "## Knowledge", 1)
                  .replace("\n## ", "\n### ")]
    if report.get("small_talk"):
        lines += [small_talk_eval.markdown(report["small_talk"]).replace("# Small talk", "## Small talk", 1)
                  .replace("\n## ", "\n### ")]
    if report.get("human"):
        lines += [human_eval.markdown(report["human"]).replace("# Human evaluation", "## Human evaluation", 1)]
        if report["human"].get("plot"):
            lines.append(f"![human evaluation over time]({report['human']['plot']})")
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--shared", type=Path, default=rails_eval.DEFAULT_SHARED)
    parser.add_argument("--smoke", action="store_true", help="tiny, fast version (for make test)")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    parser.add_argument("--epochs", type=int, default=20, help="DIET epochs for the routing section")
    parser.add_argument("--per-intent", type=int, default=None, help="cap training examples per intent")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--guard-data", type=Path, help="extra labelled CSV/JSONL for the rails")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="label")
    parser.add_argument("--positive", help="label value that means 'should be refused'")
    parser.add_argument("--model", action="append", default=[], help="extra model id or folder to compare")
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.shared / "redteam_dev").exists():
        print(f"error: {args.shared} has no redteam_dev/clinc150; pass --shared", file=sys.stderr)
        return 2
    start = time.perf_counter()
    report: Dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "smoke": args.smoke}
    try:
        if "assistant" not in args.skip:
            print("== assistant quality (rasa test nlu / core) ==", flush=True)
            report["assistant"] = assistant_quality(args.out, 0 if args.smoke else args.folds)
        if "routing" not in args.skip:
            print("== routing on CLINC150 and Banking77 ==", flush=True)
            report["routing"] = routing.run(
                args.shared, epochs=2 if args.smoke else args.epochs,
                per_intent=3 if args.smoke else args.per_intent, test_limit=200 if args.smoke else None,
            )
        if "guardrails" not in args.skip:
            print("== guardrail efficacy ==", flush=True)
            report["guardrails"] = guardrail_efficacy(args.shared, args.guard_data, args.text_col,
                                                      args.label_col, args.positive)
        if "quality" not in args.skip:
            print("== response quality ==", flush=True)
            report["quality"] = response_quality(args.model, args.smoke)
        if "answers" not in args.skip:
            print("== answer quality ==", flush=True)
            report["answers"] = answer_quality.evaluate(ROOT / "config.yml", generate=not args.smoke,
                                                        out=args.out / "answers")
        if "knowledge" not in args.skip:
            print("== knowledge (held-out questions, over REST) ==", flush=True)
            report["knowledge"] = knowledge_eval.evaluate(ROOT / "config.yml", generate=not args.smoke,
                                                          out=args.out / "knowledge")
            report["knowledge"].get("answers", {}).pop("rows", None)
        if "small_talk" not in args.skip and not args.smoke:
            print("== small talk (held-out conversations, over REST) ==", flush=True)
            report["small_talk"] = small_talk_eval.evaluate(args.out / "small_talk")
        if "human" not in args.skip:
            print("== human evaluation (ratings from the review page) ==", flush=True)
            from rasa_safe_hybrid.review.__main__ import configured_db
            from rasa_safe_hybrid.review.store import ReviewStore

            report["human"] = human_eval.evaluate(ReviewStore(configured_db(ROOT / "credentials.yml"))
                                                  .list_ratings(), args.out / "human")
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report["took_s"] = round(time.perf_counter() - start, 1)
    plots = plot(report, args.out)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    (args.out / "report.md").write_text(markdown(report, plots))
    print(f"report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
