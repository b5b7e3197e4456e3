"""Promotion: a versioned folder (safetensors + a GGUF copy) for a tuned model, unless its rail pass rate dropped."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

logger = logging.getLogger(__name__)

GGUF_NAME = "model.q8_0.gguf"


def decide(before: Dict[str, Any], after: Dict[str, Any]) -> Tuple[bool, str]:
    """Whether the tuned model may be promoted, and why (rail pass rate must not drop)."""
    old, new = before.get("rail_pass_rate"), after.get("rail_pass_rate")
    if old is None or new is None:
        return False, "no rail pass rate measured"
    if new < old:
        return False, f"output-rail pass rate dropped from {old:.1%} to {new:.1%}"
    return True, f"output-rail pass rate {old:.1%} -> {new:.1%}"


def next_version(models_dir: Path, name: str) -> Path:
    """``<models_dir>/<name>-v<NNN>``, one above the highest existing version."""
    pattern = re.compile(rf"^{re.escape(name)}-v(\d+)$")
    versions = [int(m.group(1)) for p in models_dir.glob(f"{name}-v*") if (m := pattern.match(p.name))]
    return models_dir / f"{name}-v{max(versions, default=0) + 1:03d}"


def promote(model: Any, tokenizer: Any, models_dir: Path, name: str, report: Dict[str, Any],
            root: Optional[Path] = None, vocab_from: Optional[Path] = None) -> Tuple[Path, str]:
    """Saves model, tokenizer, a GGUF copy and the report; returns the folder and the config lines that use it.

    The GGUF copy (``model.q8_0.gguf``, made by llama.cpp's converter, see
    ``finetune.gguf``) lets the ``llama_cpp`` backend serve the tuned model;
    ``vocab_from`` is the GGUF base model whose tokenizer it keeps. A failed
    conversion does not stop the promotion: the report says why, and the
    ``transformers`` backend serves the folder.
    """
    from finetune.gguf import ConversionError, convert

    models_dir.mkdir(parents=True, exist_ok=True)
    target = next_version(models_dir, name)
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        gguf = convert(partial, partial / GGUF_NAME, "q8_0", vocab_from)
        report["gguf"] = {"file": gguf.name, "bytes": gguf.stat().st_size, "vocab_from": str(vocab_from or "")}
    except ConversionError as error:
        logger.warning(f"No GGUF copy of the tuned model (the llama_cpp backend cannot serve it): {error}")
        report["gguf"] = {"error": str(error)[-500:]}
    (partial / "finetune_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
    partial.rename(target)
    shown = target
    if root is not None:
        try:
            shown = target.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    lines = f"      model: {shown}\n      gguf_file: null  # backend: transformers"
    if "file" in report["gguf"]:
        lines = (f"      model: {shown}\n      gguf_file: {GGUF_NAME}  # backend: llama_cpp\n"
                 f"    (or, with backend: transformers, gguf_file: null to load the safetensors)")
    return target, lines
