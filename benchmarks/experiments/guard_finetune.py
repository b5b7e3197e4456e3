"""Candidate: fine-tune the top transformer layers of the shared MiniLM encoder (a guard that
reuses the encoder's first K layers), measured leave-source-group-out like the shipped heads.

Usage: python -m benchmarks.experiments.guard_finetune [--k 4] [--epochs 1] [--augment] [--groups all|a,b]
Writes /tmp/guard-exp/res-*.json
see benchmarks/experiments/README.md for what it found.
--augment adds the style rewrites of benchmarks/experiments/augment.py to training (and
reports recall on the held-out group's rewrites separately)."""
import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from rasa_safe_hybrid.embeddings import get_encoder
from rasa_safe_hybrid.guardrails.learned.heads import HEADS
from sklearn.metrics import roc_auc_score

from finetune import guards as T

p = argparse.ArgumentParser()
p.add_argument("--k", type=int, default=4)
p.add_argument("--epochs", type=float, default=2)
p.add_argument("--lr", type=float, default=5e-5)
p.add_argument("--groups", default="all")
p.add_argument("--maxlen", type=int, default=128)
p.add_argument("--limit", type=int, default=0)
p.add_argument("--augment", action="store_true")
args = p.parse_args()
torch.manual_seed(0)
torch.set_num_threads(2)
rows = T.safety_rows(T.DEFAULT_SHARED) + T.project_rows()
NBASE = len(rows)
if args.augment:
    from benchmarks.experiments.augment import augment
    rows = rows + augment(rows, HEADS, "harmful", "attack")
print(len(rows), "rows", flush=True)
enc = get_encoder(".cache/models/all-MiniLM-L6-v2", args.maxlen)
model = enc._model
K = args.k
Path("/tmp/guard-exp").mkdir(exist_ok=True)
cache = Path(f"/tmp/guard-exp/hidden-k{K}-{args.maxlen}-{len(rows)}.pt")
if cache.exists():
    H = torch.load(cache)
else:
    t0 = time.time()
    ids = [enc._ids(r.text) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: len(ids[i]))
    H = [None] * len(rows)
    with torch.inference_mode():
        for s in range(0, len(order), 64):
            idx = order[s:s + 64]
            width = max(len(ids[i]) for i in idx)
            x = torch.tensor([ids[i] + [0] * (width - len(ids[i])) for i in idx])
            m = torch.tensor([[1] * len(ids[i]) + [0] * (width - len(ids[i])) for i in idx])
            hs = model(input_ids=x, attention_mask=m, output_hidden_states=True).hidden_states[K]
            for j, i in enumerate(idx):
                H[i] = hs[j, : len(ids[i])].to(torch.float16).clone()
            if s % 3200 == 0:
                print("hidden", s, time.time() - t0, flush=True)
    torch.save(H, cache)
    print("hidden states", time.time() - t0, flush=True)

Y = np.array([[(-1 if r.targets[h] is None else r.targets[h]) for h in HEADS] for r in rows], dtype=np.float32)
W = T._weights(rows)
hard = T._hard(rows)
groups = np.array([r.group for r in rows])


class Top(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(copy.deepcopy(model.encoder.layer[K:]))
        self.out = torch.nn.Linear(384, len(HEADS))

    def forward(self, h, m):
        ext = (1.0 - m[:, None, None, :].float()) * -1e4
        for layer in self.layers:
            h = layer(h, attention_mask=ext)[0]
        w = m.unsqueeze(-1).float()
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return self.out(pooled * 10)


def batchify(idx):
    width = max(H[i].shape[0] for i in idx)
    h = torch.zeros(len(idx), width, 384)
    m = torch.zeros(len(idx), width, dtype=torch.long)
    for j, i in enumerate(idx):
        n = H[i].shape[0]
        h[j, :n] = H[i].float()
        m[j, :n] = 1
    return h, m


def fit(train_idx, epochs, seed=0):
    rng = np.random.default_rng(seed)
    net = Top()
    # balanced positive weights per head
    y = Y[train_idx]
    posw = []
    for c in range(len(HEADS)):
        use = y[:, c] >= 0
        pos = (y[use, c] == 1).sum()
        neg = (y[use, c] == 0).sum()
        posw.append(neg / max(pos, 1))
    posw = torch.tensor(posw, dtype=torch.float32).clamp(max=30)
    opt = torch.optim.AdamW([{"params": net.layers.parameters(), "lr": args.lr},
                             {"params": net.out.parameters(), "lr": 1e-3}], weight_decay=0.01)
    # length-bucketed batches for speed
    bs = 32
    steps_total = int(epochs * len(train_idx) / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / max(1, steps_total))
    )
    step = 0
    t0 = time.time()
    net.train()
    while step < steps_total:
        perm = rng.permutation(train_idx)
        # bucket: sort chunks of 50 batches by length
        chunks = [perm[i:i + bs * 50] for i in range(0, len(perm), bs * 50)]
        batches = []
        for ch in chunks:
            ch = sorted(ch, key=lambda i: H[i].shape[0])
            batches += [ch[i:i + bs] for i in range(0, len(ch), bs)]
        rng.shuffle(batches)
        for b in batches:
            if step >= steps_total:
                break
            h, m = batchify(b)
            logits = net(h, m)
            yt = torch.tensor(Y[b])
            mask = (yt >= 0).float()
            wt = torch.tensor(W[b], dtype=torch.float32)[:, None]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, yt.clamp(min=0), pos_weight=posw, reduction="none")
            loss = (loss * mask * wt).sum() / (mask * wt).sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 200 == 0:
                print(f"  step {step}/{steps_total} loss {loss.item():.3f} {time.time()-t0:.0f}s", flush=True)
    net.eval()
    return net


def score(net, idx):
    out = np.zeros((len(idx), len(HEADS)), dtype=np.float32)
    order = sorted(range(len(idx)), key=lambda j: H[idx[j]].shape[0])
    with torch.inference_mode():
        for s in range(0, len(order), 128):
            js = order[s:s + 128]
            h, m = batchify([idx[j] for j in js])
            out[js] = torch.sigmoid(net(h, m)).numpy()
    return out


GH = {"harmful": 0, "attack": 1, "medical_advice": 2}
todo = list(T.GROUPS) if args.groups == "all" else args.groups.split(",")
results = {}
for held in todo:
    test = np.where((groups == held) & (np.arange(len(rows)) < NBASE))[0]
    test_aug = np.where((groups == held) & (np.arange(len(rows)) >= NBASE))[0]
    trainable = np.where(groups != held)[0]
    rng = np.random.default_rng(0)
    perm = rng.permutation(trainable)
    nval = len(perm) // 5
    val, tr = perm[:nval], perm[nval:]
    val = val[val < NBASE]
    if args.limit:
        tr = tr[: args.limit]
    t0 = time.time()
    net = fit(tr, args.epochs)
    sv = score(net, val)
    st = score(net, test)
    sa = score(net, test_aug) if len(test_aug) else None
    res = {"n": len(test), "train_s": round(time.time() - t0)}
    for head, c in GH.items():
        yv = Y[val, c]
        yt = Y[test, c]
        neg = hard[val] & (yv == 0)
        thr = T.threshold_for_fpr(sv[neg, c], 0.04)
        usable = yt >= 0
        r = {"thr": round(thr, 3)}
        if (yt[usable] == 1).any():
            r["pos"] = int((yt == 1).sum())
            r["recall"] = round(float((st[yt == 1, c] >= thr).mean()), 4)
        if (yt[usable] == 0).any():
            r["fr"] = round(float((st[usable & (yt == 0), c] >= thr).mean()), 4)
            hn = usable & (yt == 0) & hard[test]
            if hn.any():
                r["fr_hard"] = round(float((st[hn, c] >= thr).mean()), 4)
        if len(set(yt[usable].tolist())) == 2:
            r["auroc"] = round(float(roc_auc_score(yt[usable], st[usable, c])), 4)
        if sa is not None:
            ya = Y[test_aug, c]
            if (ya == 1).any():
                r["aug_recall"] = round(float((sa[ya == 1, c] >= thr).mean()), 4)
            if (ya == 0).any():
                r["aug_fr"] = round(float((sa[ya == 0, c] >= thr).mean()), 4)
        res[head] = r
    results[held] = res
    print(held, json.dumps(res), flush=True)
json.dump(
    results, open(f"/tmp/guard-exp/res-k{K}-e{args.epochs}-a{int(args.augment)}-{args.groups[:20]}.json", "w"), indent=1
)
