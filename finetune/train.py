"""Full fine-tuning of a causal LM on chat examples, loss on the reply only.

Resumable: after every epoch the model, optimizer, scheduler, step counter,
best held-out loss and random states go to ``<run_dir>/checkpoint.pt``
(written to a temporary file, then renamed); ``resume=True`` continues from
it. Early stopping: training ends when the held-out loss has not improved for
``patience`` evaluations, and the best weights are the result. Runs on the GPU
when torch sees one, otherwise on the CPU; nothing else changes.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)

IGNORE = -100


@dataclass
class TrainSettings:
    """Hyper-parameters (the CLI's flags)."""

    epochs: int = 4
    learning_rate: float = 5e-5
    batch_size: int = 8
    max_length: int = 256
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    patience: int = 1
    evals_per_epoch: int = 1
    max_steps: int = 0  # 0: no limit (tests use a few steps)
    seed: int = 13


@dataclass
class TrainResult:
    """What happened during training."""

    steps: int
    epochs_run: float
    train_losses: List[float]
    heldout_losses: List[float]
    best_heldout_loss: float
    stopped_early: bool
    resumed_from_step: int
    wall_s: float
    device: str
    settings: Dict[str, Any] = field(default_factory=dict)


def encode(example: Dict[str, Any], tokenizer: Any, max_length: int) -> Optional[Dict[str, List[int]]]:
    """Token ids and labels; prompt tokens are masked so only the reply is learnt.

    Long prompts lose their oldest tokens (history) first; an example whose
    reply alone is longer than ``max_length`` is skipped (None).
    """
    messages = example["messages"]
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(messages, tokenize=True)
    if hasattr(prompt, "input_ids"):  # some tokenizers return a BatchEncoding
        prompt, full = prompt["input_ids"], full["input_ids"]
    prompt, full = list(prompt), list(full)
    reply = full[len(prompt):]
    if not reply or len(reply) >= max_length:
        return None
    prompt = prompt[-(max_length - len(reply)):]
    return {"input_ids": prompt + reply, "labels": [IGNORE] * len(prompt) + reply}


def _batches(rows: Sequence[Dict[str, List[int]]], size: int, pad_id: int, device: str) -> List[Dict[str, Any]]:
    import torch

    batches = []
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        width = max(len(r["input_ids"]) for r in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, row in enumerate(chunk):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"])
            labels[i, :n] = torch.tensor(row["labels"])
            mask[i, :n] = 1
        batches.append({"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)})
    return batches


def heldout_loss(model: Any, batches: Sequence[Dict[str, Any]]) -> float:
    """Token-weighted mean loss over reply tokens."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for batch in batches:
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            total += float(model(**batch).loss) * n
            tokens += n
    model.train()
    return total / max(1, tokens)


def train(
    model: Any,
    tokenizer: Any,
    train_examples: Sequence[Dict[str, Any]],
    heldout_examples: Sequence[Dict[str, Any]],
    run_dir: Path,
    settings: TrainSettings,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Fine-tunes ``model`` in place and leaves the best weights in it."""
    import torch
    from tqdm import tqdm

    device = "cuda" if torch.cuda.is_available() else "cpu"
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_rows = [r for r in (encode(e, tokenizer, settings.max_length) for e in train_examples) if r]
    heldout_rows = [r for r in (encode(e, tokenizer, settings.max_length) for e in heldout_examples) if r]
    if not train_rows or not heldout_rows:
        raise ValueError(f"nothing to train on: {len(train_rows)} train and {len(heldout_rows)} held-out examples "
                         f"fit max_length={settings.max_length}")
    heldout_batches = _batches(heldout_rows, settings.batch_size, pad_id, device)
    model.to(device)
    model.train()
    steps_per_epoch = math.ceil(len(train_rows) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    warmup = max(1, int(total_steps * settings.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup))))
    eval_every = max(1, steps_per_epoch // max(1, settings.evals_per_epoch))

    checkpoint = run_dir / "checkpoint.pt"
    state: Dict[str, Any] = {"step": 0, "train_losses": [], "heldout_losses": [], "best": math.inf,
                             "best_state": None, "bad_evals": 0}
    resumed_from = 0
    if resume and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        random.setstate(saved["python_rng"])
        torch.set_rng_state(saved["torch_rng"])
        resumed_from = state["step"]
        logger.info(f"Resumed from step {resumed_from} ({checkpoint}).")
    elif checkpoint.exists():
        checkpoint.unlink()

    def save_checkpoint() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        partial = checkpoint.with_suffix(".partial")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": state, "python_rng": random.getstate(),
                    "torch_rng": torch.get_rng_state()}, partial)
        partial.replace(checkpoint)

    if state["best"] == math.inf and not state["heldout_losses"]:
        state["heldout_losses"].append(heldout_loss(model, heldout_batches))  # before training
        state["best"] = state["heldout_losses"][0]
    start, stopped_early = time.perf_counter(), False
    bar = tqdm(total=total_steps, initial=state["step"], desc="fine-tuning", unit="step", disable=not progress)
    while state["step"] < total_steps and not stopped_early:
        epoch = state["step"] // steps_per_epoch
        order = list(range(len(train_rows)))
        random.Random(settings.seed + epoch).shuffle(order)
        batches = _batches([train_rows[i] for i in order], settings.batch_size, pad_id, device)
        for batch in batches[state["step"] % steps_per_epoch :]:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            state["train_losses"].append(round(float(loss), 5))
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.3f}", heldout=f"{state['heldout_losses'][-1]:.3f}")
            end_of_epoch = state["step"] % steps_per_epoch == 0
            if state["step"] % eval_every == 0 or end_of_epoch or state["step"] >= total_steps:
                loss_now = heldout_loss(model, heldout_batches)
                state["heldout_losses"].append(round(loss_now, 5))
                if loss_now < state["best"] - 1e-4:
                    state["best"], state["bad_evals"] = loss_now, 0
                    state["best_state"] = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
                else:
                    state["bad_evals"] += 1
                    if state["bad_evals"] > settings.patience:
                        logger.info(f"Early stop at step {state['step']}: held-out loss {loss_now:.4f} did not "
                                    f"improve on {state['best']:.4f} for {state['bad_evals']} evaluation(s).")
                        stopped_early = True
                if end_of_epoch or stopped_early:
                    save_checkpoint()
            if stopped_early or state["step"] >= total_steps:
                break
    bar.close()
    if state["best_state"] is not None:
        model.load_state_dict(copy.deepcopy(state["best_state"]))
    model.eval()
    return TrainResult(
        steps=state["step"], epochs_run=round(state["step"] / steps_per_epoch, 2),
        train_losses=state["train_losses"], heldout_losses=state["heldout_losses"],
        best_heldout_loss=round(state["best"], 5), stopped_early=stopped_early, resumed_from_step=resumed_from,
        wall_s=round(time.perf_counter() - start, 1), device=device, settings=asdict(settings),
    )
