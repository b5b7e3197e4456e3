"""Candidate: linear probes on the response model's own hidden states (SmolLM2-135M-Instruct),
measured leave-source-group-out against the shipped MiniLM + logistic-regression heads.

1. features: each text wrapped in the chat template as a user turn (head 96 + tail 32
   tokens), hidden states of layers 6/10/14/18/22 at the last token (the assistant's
   first position) and mean-pooled; a subset of safety_train + the project's rows
   (CLINC150/Banking77 and HateCheck sampled down to about 1,500 rows each, seed 0),
   about 22 minutes on 2 cores;
2. the same leave-group-out procedure and threshold rule as ``make train-guards``
   (finetune/guards.py), logistic regression on standardised
   features, and the MiniLM embedding on the same rows for comparison.

Usage: python -m benchmarks.experiments.guard_probe [--C 0.05] [--features minilm,last22,...]
Needs the converted transformers weights of the default GGUF (``backend: transformers``
converts them on first load) and ../shared/datasets. Results: benchmarks/experiments/README.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import time
from pathlib import Path

import numpy as np

from finetune import guards as T

ROOT = Path(__file__).resolve().parents[2]
WORK = Path("/tmp/guard-exp")
LAYERS = (6, 10, 14, 18, 22)


def subset_rows() -> tuple:
    """(indices into all rows, the rows): intent sets and HateCheck sampled to about 1,500 each."""
    rows = T.safety_rows(T.DEFAULT_SHARED) + T.project_rows()
    rng = random.Random(0)
    keep = [i for i, r in enumerate(rows)
            if not (r.group in ("intent_sets", "hatecheck")
                    and rng.random() > 1500 / (6195 if r.group == "intent_sets" else 3725))]
    return keep, rows


def features(rows) -> tuple:
    """(last-token, mean) hidden states, ``(n, len(LAYERS), 576)`` each, cached in WORK."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = WORK / f"smol-{len(rows)}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["last"].astype(np.float32), data["mean"].astype(np.float32)
    torch.set_num_threads(2)
    folder = glob.glob(str(ROOT / ".cache" / "converted" / "*/"))[0]
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    pre = tok("<|im_start|>user\n", add_special_tokens=False)["input_ids"]
    post = tok("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]

    def ids(text):
        x = tok(text, add_special_tokens=False)["input_ids"]
        return pre + (x[:96] + x[-32:] if len(x) > 128 else x) + post

    all_ids = [ids(r.text) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: len(all_ids[i]))
    last = np.zeros((len(rows), len(LAYERS), 576), np.float32)
    mean = np.zeros_like(last)
    start = time.time()
    with torch.inference_mode():
        for s in range(0, len(order), 32):
            idx = order[s:s + 32]
            width = max(len(all_ids[i]) for i in idx)
            x = torch.tensor([[2] * (width - len(all_ids[i])) + all_ids[i] for i in idx])  # left padding
            m = torch.tensor([[0] * (width - len(all_ids[i])) + [1] * len(all_ids[i]) for i in idx])
            out = model.model(input_ids=x, attention_mask=m, output_hidden_states=True)
            for li, layer in enumerate(LAYERS):
                h = out.hidden_states[layer]
                last[idx, li] = h[:, -1].numpy()
                w = m.unsqueeze(-1).float()
                mean[idx, li] = ((h * w).sum(1) / w.sum(1)).numpy()
            if s % 1600 == 0:
                print(f"{s}/{len(rows)} rows, {time.time() - start:.0f} s", flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, last=last.astype(np.float16), mean=mean.astype(np.float16))
    return last, mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=float, default=0.05)
    parser.add_argument("--features", default="minilm,last14,mean14,last22,mean10")
    args = parser.parse_args()
    keep, rows = subset_rows()
    minilm = T.embed([r.text for r in rows], T.DEFAULT_ENCODER, False)[keep]
    rows = [rows[i] for i in keep]
    last, mean = features(rows)

    def std(x):
        return (x - x.mean(0)) / (x.std(0) + 1e-6) / np.sqrt(x.shape[1])

    candidates = {"minilm": minilm}
    for li, layer in enumerate(LAYERS):
        candidates[f"last{layer}"] = std(last[:, li])
        candidates[f"mean{layer}"] = std(mean[:, li])
    for name in args.features.split(","):
        T.C = 0.5 if name == "minilm" else args.C
        groups = T.leave_group_out(candidates[name], rows, T.fit, False)["groups"]
        per_group = {g: {h: {k: v[h].get(k) for k in ("recall", "false_refusals_hard", "auroc")}
                         for h in ("harmful", "attack") if h in v} for g, v in groups.items()}
        print(name, json.dumps({"summary": T.summarise(groups), "groups": per_group}), flush=True)


if __name__ == "__main__":
    main()
