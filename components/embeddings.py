"""One offline sentence encoder per process, shared by every part that embeds text.

The learned rails use it today; retrieval and a dense NLU featurizer can take
the same instance (``get_encoder``), so a process loads the weights once.

The default model is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0),
extracted with its sha256 checked by ``scripts/fetch_model.py minilm`` into
``.cache/models/all-MiniLM-L6-v2``. Embeddings are the attention-masked mean of
the last hidden states, L2-normalised (the model's own pooling). Long texts
keep their beginning and their end (``max_tokens``), where instructions and
requests usually sit.

``torch`` and ``transformers`` are imported when the encoder is loaded, never
at import time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL = ".cache/models/all-MiniLM-L6-v2"
DEFAULT_MAX_TOKENS = 128
TAIL_TOKENS = 32  # of a long text, this many tokens from its end are kept
CACHE_SIZE = 2048  # embeddings of recent texts (the last turns of conversations)


class EncoderUnavailable(RuntimeError):
    """The encoder's files are missing or cannot be loaded."""


class SentenceEncoder:
    """Turns texts into unit-length vectors; thread-safe; caches recent texts."""

    def __init__(self, model_dir: Path, max_tokens: int = DEFAULT_MAX_TOKENS, threads: int = 0) -> None:
        os.environ.setdefault("USE_TF", "0")
        os.environ.setdefault("USE_TORCH", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        if not (model_dir / "model.safetensors").exists():
            raise EncoderUnavailable(
                f"no sentence encoder in {model_dir}: fetch it with `python scripts/fetch_model.py minilm` "
                f"(make setup does), or set the rails' `encoder` to a folder with model.safetensors."
            )
        start = time.perf_counter()
        if threads:
            torch.set_num_threads(threads)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            self._model = AutoModel.from_pretrained(str(model_dir)).eval()
        except (OSError, ValueError) as error:
            raise EncoderUnavailable(f"cannot load the sentence encoder in {model_dir}: {error}") from error
        self.model_dir = model_dir
        self.max_tokens = max_tokens
        self.dim = int(self._model.config.hidden_size)
        self._lock = threading.Lock()
        self._cache: "OrderedDict[str, np.ndarray]" = OrderedDict()
        logger.info(f"Sentence encoder {model_dir.name} loaded in {time.perf_counter() - start:.1f} s.")

    def _ids(self, text: str) -> List[int]:
        ids = self._tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        room = self.max_tokens - 2
        if len(ids) > room:
            ids = ids[: room - TAIL_TOKENS] + ids[-TAIL_TOKENS:]
        return [self._tokenizer.cls_token_id, *ids, self._tokenizer.sep_token_id]

    def _forward(self, batch: List[List[int]]) -> np.ndarray:
        import torch

        width = max(len(ids) for ids in batch)
        pad = self._tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        with torch.inference_mode():
            hidden = self._model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)

    def clear_cache(self) -> None:
        """Forgets the embeddings of recent texts (for measurements)."""
        with self._lock:
            self._cache.clear()

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts`` as an ``(n, dim)`` float32 array (empty text: its own vector)."""
        keys = [hashlib.blake2b(t.encode("utf-8", "replace"), digest_size=16).hexdigest() for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            missing: Dict[str, List[int]] = {}
            for i, key in enumerate(keys):
                if key in self._cache:
                    out[i] = self._cache[key]
                    self._cache.move_to_end(key)
                else:
                    missing.setdefault(key, []).append(i)
            todo: List[Tuple[str, List[int]]] = sorted(
                ((k, self._ids(texts[idx[0]])) for k, idx in missing.items()), key=lambda kv: len(kv[1])
            )
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                vectors = self._forward([ids for _, ids in chunk])
                for (key, _), vector in zip(chunk, vectors):
                    for i in missing[key]:
                        out[i] = vector
                    self._cache[key] = vector
                    if len(self._cache) > CACHE_SIZE:
                        self._cache.popitem(last=False)
        return out


_ENCODERS: Dict[Tuple[str, int], SentenceEncoder] = {}
_LOCK = threading.Lock()


def file_sha256(path: Path) -> str:
    """A file's sha256 in hex (weights are checked against recorded digests)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(path: str) -> Path:
    """A model folder: absolute, or relative to the folder the process runs in."""
    return Path(path).expanduser().resolve()


def get_encoder(model: str = DEFAULT_MODEL, max_tokens: int = DEFAULT_MAX_TOKENS) -> SentenceEncoder:
    """The process-wide encoder for ``model`` (loaded on first use, then shared)."""
    key = (str(resolve(model)), max_tokens)
    with _LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = SentenceEncoder(resolve(model), max_tokens)
            _ENCODERS[key] = encoder
        return encoder


def loaded_encoders() -> List[Any]:
    """The encoders this process has loaded (a test checks there is one)."""
    return list(_ENCODERS.values())
