"""Promotion: a versioned folder for a tuned model, unless its rail pass rate dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple


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
            root: Optional[Path] = None) -> Tuple[Path, str]:
    """Saves model, tokenizer and report; returns the folder and the config lines that use it."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = next_version(models_dir, name)
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / "finetune_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
    partial.rename(target)
    shown = target
    if root is not None:
        try:
            shown = target.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    lines = f"      model: {shown}\n      gguf_file: null"
    return target, lines
