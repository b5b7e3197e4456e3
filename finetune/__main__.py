"""make finetune: collect -> preprocess -> train -> evaluate -> promote.

Usage: python -m finetune [--tracker-store URL [--since DATE] [--until DATE]]
                          [--epochs N] [--resume] [--max-steps N] [...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.splitlines()[0])
    data = parser.add_argument_group("data")
    data.add_argument("--config", type=Path, default=ROOT / "config.yml",
                      help="Rasa config: base model, system prompt and rails come from it")
    data.add_argument("--tracker-store", metavar="URL",
                      help="also use stored conversations, e.g. sqlite:///var/tracker.db or postgresql://u:p@host/db")
    data.add_argument("--since", metavar="DATE", help="ISO date: tracker events from then on")
    data.add_argument("--until", metavar="DATE", help="ISO date: tracker events before then")
    data.add_argument("--per-intent", type=int, default=8, help="NLU examples paired with each response")
    data.add_argument("--no-grounded", action="store_true",
                      help="leave out finetune/data/grounded.jsonl (answers from passages)")
    data.add_argument("--no-reviewed", action="store_true",
                      help="leave out finetune/data/reviewed.jsonl (replies reviewers rated good or corrected)")
    data.add_argument("--max-examples", type=int, default=0, help="cap the data set (0: all)")
    data.add_argument("--heldout", type=float, default=0.15, help="held-out share, split by reply")
    data.add_argument("--seed", type=int, default=13)
    model = parser.add_argument_group("model")
    model.add_argument("--base-model", help="model id or folder to tune (default: generation.model of --config)")
    model.add_argument("--base-gguf", help="GGUF file in --base-model ('none' for safetensors)")
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=4)
    training.add_argument("--learning-rate", type=float, default=5e-5)
    training.add_argument("--batch-size", type=int, default=8)
    training.add_argument("--max-length", type=int, default=256)
    training.add_argument("--patience", type=int, default=1, help="evaluations without improvement before stopping")
    training.add_argument("--evals-per-epoch", type=int, default=1)
    training.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: no limit)")
    training.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt")
    output = parser.add_argument_group("evaluation and output")
    output.add_argument("--eval-limit", type=int, default=40, help="held-out replies generated for BLEU/ROUGE")
    output.add_argument("--rail-prompts", type=Path, default=None, help="prompt file for the rail pass rate")
    output.add_argument("--run-dir", type=Path, default=ROOT / "var" / "finetune")
    output.add_argument("--models-dir", type=Path, default=ROOT / "finetuned")
    output.add_argument("--name", default="assistant")
    output.add_argument("--no-progress", action="store_true")
    return parser


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """The whole pipeline; returns the report (also written to <run-dir>/report.json)."""
    from rasa.shared.exceptions import InvalidConfigException
    from rasa_safe_hybrid.config import load_plugin_config
    from rasa_safe_hybrid.generation.transformers_backend import TransformersGenerator, load_model

    from finetune import collect, evaluate, preprocess, promote, train

    log = logging.getLogger("finetune")
    progress = not args.no_progress
    started = time.perf_counter()
    plugin = load_plugin_config(args.config)
    settings = plugin.generation
    if settings.backend == "openai" and not args.base_model:
        raise InvalidConfigException("generation.backend is openai (a remote model): pass --base-model to tune "
                                     "locally.")
    overrides: Dict[str, Any] = {"backend": "transformers"}
    if args.base_model:
        overrides["model"] = args.base_model
        overrides["gguf_file"] = None
    if args.base_gguf:
        overrides["gguf_file"] = None if args.base_gguf.lower() == "none" else args.base_gguf
    settings = settings.with_overrides(**overrides)

    # 1. collect
    dialogues = (collect.collect_project(per_intent=args.per_intent, seed=args.seed) + collect.collect_open_qa()
                 + ([] if args.no_grounded else collect.collect_grounded())
                 + ([] if args.no_reviewed else collect.collect_reviewed()))
    if args.tracker_store:
        dialogues += collect.collect_tracker(args.tracker_store, args.since, args.until, plugin.trace_slot)
    log.info(f"Collected {len(dialogues)} dialogues.")

    # 2. preprocess
    prepared = preprocess.preprocess(dialogues, plugin.guardrails, settings.system_prompt,
                                     settings.history_turns, args.heldout, args.seed, args.max_examples)
    log.info(f"Prepared {prepared.stats()}.")
    model, tokenizer = load_model(settings)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    preprocess.write_jsonl(args.run_dir / "train.jsonl", preprocess.render(prepared.train, tokenizer))
    preprocess.write_jsonl(args.run_dir / "heldout.jsonl", preprocess.render(prepared.heldout, tokenizer))

    # 3. evaluate the base model, train, evaluate again
    prompts = evaluate.load_prompts(args.rail_prompts or evaluate.RAIL_PROMPTS)
    before = evaluate.evaluate(TransformersGenerator(settings, model, tokenizer), plugin.guardrails,
                               prepared.heldout, prompts, args.eval_limit, progress)
    log.info(f"Before: perplexity {before['perplexity']}, BLEU {before['bleu4']}, "
             f"rail pass rate {before['rail_pass_rate']}.")
    train_settings = train.TrainSettings(
        epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
        max_length=args.max_length, patience=args.patience, evals_per_epoch=args.evals_per_epoch,
        max_steps=args.max_steps, seed=args.seed)
    result = train.train(model, tokenizer, prepared.train, prepared.heldout, args.run_dir, train_settings,
                         resume=args.resume, progress=progress)
    model.to("cpu")
    after = evaluate.evaluate(TransformersGenerator(settings, model, tokenizer), plugin.guardrails,
                              prepared.heldout, prompts, args.eval_limit, progress)
    log.info(f"After: perplexity {after['perplexity']}, BLEU {after['bleu4']}, "
             f"rail pass rate {after['rail_pass_rate']}.")

    # 4. promote
    ok, reason = promote.decide(before, after)
    report: Dict[str, Any] = {
        "base_model": settings.model_id, "data": prepared.stats(), "training": asdict(result),
        "before": before, "after": after, "promoted": None, "decision": reason,
        "wall_s": None,
    }
    if ok:
        base_gguf = Path(settings.model) / settings.options.gguf_file if settings.options.gguf_file else None
        target, lines = promote.promote(model, tokenizer, args.models_dir, args.name, report, root=ROOT,
                                        vocab_from=base_gguf)
        report["promoted"] = str(target)
        report["config_lines"] = lines
    report["wall_s"] = round(time.perf_counter() - started, 1)
    (args.run_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
    return report


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("transformers", "urllib3", "rasa", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from rasa.shared.exceptions import InvalidConfigException

    try:
        report = run(args)
    except (InvalidConfigException, RuntimeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    b, a = report["before"], report["after"]
    print(f"\nheld-out perplexity {b['perplexity']} -> {a['perplexity']}; BLEU-4 {b['bleu4']} -> {a['bleu4']}; "
          f"ROUGE-L {b['rouge_l_f1']} -> {a['rouge_l_f1']}; rail pass rate {b['rail_pass_rate']} -> "
          f"{a['rail_pass_rate']}  (report: {args.run_dir / 'report.json'})")
    if report["promoted"]:
        print(
            f"Promoted to {report['promoted']} ({report['decision']}).\n"
            f"Point the LLM at it in config.yml, under LLMResponsePolicy's `generation:`\n"
            f"{report['config_lines']}\nthen `make shell`: the Rasa model retrains because config.yml changed, "
            "and the\naction server loads the tuned model on its next LLM turn."
        )
        return 0
    print(f"Not promoted: {report['decision']}.", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
