"""One offline sentence encoder per process, shared by every part that embeds text.

The learned rails, retrieval and the groundedness rail take the same instance
(``get_encoder``), so a process loads the weights once.

The default model is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0),
extracted with its sha256 checked by ``scripts/fetch_model.py minilm`` into
``.cache/models/all-MiniLM-L6-v2``. Embeddings are the attention-masked mean of
the last hidden states, L2-normalised (the model's own pooling). Long texts
keep their beginning and their end (``max_tokens``), where instructions and
requests usually sit. Token ids come from the model's own ``tokenizer.json``
(the ``tokenizers`` library) whatever runs the network.

Three runtimes compute the same embeddings from the same weights; the first
whose file and package are present is chosen:

- ``onnx``: ONNX Runtime on the folder's ``model.onnx``, which ``make setup``
  exports from the checked safetensors with torch (float32, deterministic, its
  sha256 checked); the quickest on 2 cores, and it embeds a turn's texts in
  one batched run (the reply and the message of the output check);
- ``llama_cpp``: the folder's ``model.f32.gguf``, which ``make setup`` converts
  with llama.cpp's own converter (a few hundred MB less memory than torch);
- ``torch``: ``transformers`` on ``model.safetensors``, otherwise.

The choice is logged; ``EMBEDDINGS_RUNTIME=onnx`` (or ``llama_cpp``,
``torch``) forces one. ``onnxruntime``, ``torch``, ``transformers`` and
``llama_cpp`` are imported when the encoder is loaded, never at import time.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL = ".cache/models/all-MiniLM-L6-v2"
DEFAULT_MAX_TOKENS = 128
TAIL_TOKENS = 32  # of a long text, this many tokens from its end are kept
CACHE_SIZE = 2048  # embeddings of recent texts (the last turns of conversations)
GGUF_NAME = "model.f32.gguf"  # written beside model.safetensors by `make setup`
ONNX_NAME = "model.onnx"  # exported beside model.safetensors by `make setup`
ONNX = "onnx"
TORCH = "torch"
LLAMA_CPP = "llama_cpp"
RUNTIMES = (ONNX, LLAMA_CPP, TORCH)  # in the order they are preferred
RUNTIME_ENV = "EMBEDDINGS_RUNTIME"


class EncoderUnavailable(RuntimeError):
    """The encoder's files are missing or cannot be loaded."""


def _load_tokenizer(model_dir: Path) -> Tuple[Any, int, int, int]:
    """The folder's fast tokenizer (no truncation, no padding) and its CLS, SEP and PAD ids."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.exists():
        raise EncoderUnavailable(f"no tokenizer.json in {model_dir}: set the `encoder` setting to the folder of "
                                 f"all-MiniLM-L6-v2 (tokenizer.json and model.safetensors).")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    special = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}
    map_file = model_dir / "special_tokens_map.json"
    if map_file.exists():
        for key, value in json.loads(map_file.read_text("utf-8")).items():
            if key in special:
                special[key] = value["content"] if isinstance(value, dict) else value
    ids = [tokenizer.token_to_id(special[k]) for k in ("cls_token", "sep_token", "pad_token")]
    if None in ids:
        raise EncoderUnavailable(f"the tokenizer in {model_dir} lacks one of {sorted(special.values())}")
    return tokenizer, ids[0], ids[1], ids[2]


def _runtime_files(model_dir: Path, file_name: str, package: str) -> Tuple[Path, Any]:
    """A runtime's weight file in ``model_dir`` and its imported package (EncoderUnavailable when either is missing)."""
    import importlib

    path = model_dir / file_name
    if not path.exists():
        raise EncoderUnavailable(f"no {file_name} in {model_dir}: set the encoder's `runtime` to `torch` (it reads "
                                 f"model.safetensors), or put the exported {file_name} in that folder")
    try:
        return path, importlib.import_module(package)
    except ImportError as error:
        raise EncoderUnavailable(f"{package} is not installed ({error})") from error


def _threads(threads: int) -> int:
    """The threads a runtime uses: ``threads``, else the cores up to 4."""
    return threads or min(4, os.cpu_count() or 1)


class SentenceEncoder:
    """Turns texts into unit-length vectors; thread-safe; caches recent texts.

    The runtimes below differ only in ``_forward`` (token ids -> vectors).
    """

    runtime = ""

    def __init__(self, model_dir: Path, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.model_dir = model_dir
        self.max_tokens = max_tokens
        self._tokenizer, self._cls, self._sep, self._pad = _load_tokenizer(model_dir)
        self.dim = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _ids(self, text: str) -> List[int]:
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        room = self.max_tokens - 2
        if len(ids) > room:
            ids = ids[: room - TAIL_TOKENS] + ids[-TAIL_TOKENS:]
        return [self._cls, *ids, self._sep]

    def _forward(self, batch: List[List[int]]) -> np.ndarray:
        raise NotImplementedError

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
                for (key, _), vector in zip(chunk, vectors, strict=False):
                    for i in missing[key]:
                        out[i] = vector
                    self._cache[key] = vector
                    if len(self._cache) > CACHE_SIZE:
                        self._cache.popitem(last=False)
        return out


class TorchEncoder(SentenceEncoder):
    """The encoder on ``transformers`` + ``torch`` (``model.safetensors``)."""

    runtime = TORCH

    def __init__(self, model_dir: Path, max_tokens: int = DEFAULT_MAX_TOKENS, threads: int = 0) -> None:
        if not (model_dir / "model.safetensors").exists():
            raise EncoderUnavailable(
                f"no sentence encoder in {model_dir}: set the rails' `encoder` (and the featurizer's) to the folder "
                f"of all-MiniLM-L6-v2 with model.safetensors."
            )
        super().__init__(model_dir, max_tokens)
        os.environ.setdefault("USE_TF", "0")
        os.environ.setdefault("USE_TORCH", "1")
        import torch
        from transformers import AutoModel

        start = time.perf_counter()
        if threads:
            torch.set_num_threads(threads)
        try:
            self._model = AutoModel.from_pretrained(str(model_dir)).eval()
        except (OSError, ValueError) as error:
            raise EncoderUnavailable(f"cannot load the sentence encoder in {model_dir}: {error}") from error
        self.dim = int(self._model.config.hidden_size)
        logger.info(f"Sentence encoder {model_dir.name} loaded on torch in {time.perf_counter() - start:.1f} s.")

    def _forward(self, batch: List[List[int]]) -> np.ndarray:
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([ids + [self._pad] * (width - len(ids)) for ids in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        with torch.inference_mode():
            hidden = self._model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)


class LlamaCppEncoder(SentenceEncoder):
    """The encoder on llama.cpp (``model.f32.gguf``, mean pooling done by llama.cpp).

    Each text is one decode of its own sequence (a turn embeds one to three
    texts; batching sequences saves little on 2 cores and needs llama.cpp's
    multi-sequence setup).
    """

    runtime = LLAMA_CPP

    def __init__(self, model_dir: Path, max_tokens: int = DEFAULT_MAX_TOKENS, threads: int = 0) -> None:
        gguf, llama_cpp = _runtime_files(model_dir, GGUF_NAME, "llama_cpp")
        super().__init__(model_dir, max_tokens)
        start = time.perf_counter()
        threads = _threads(threads)
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(gguf), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=max(512, max_tokens), n_batch=max_tokens, n_ubatch=max_tokens, n_threads=threads,
                n_threads_batch=threads, verbose=False,
            )
        except (ValueError, RuntimeError) as error:
            raise EncoderUnavailable(f"llama.cpp cannot load {gguf}: {error}") from error
        self._lib = llama_cpp
        self.dim = int(self._llama.n_embd())
        logger.info(f"Sentence encoder {model_dir.name} loaded on llama.cpp ({threads} threads) "
                    f"in {time.perf_counter() - start:.1f} s.")

    def _forward(self, batch: List[List[int]]) -> np.ndarray:
        lib, ctx = self._lib, self._llama._ctx.ctx
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        for row, ids in enumerate(batch):
            tokens = (lib.llama_token * len(ids))(*ids)
            lib.llama_kv_self_clear(ctx)
            if lib.llama_decode(ctx, lib.llama_batch_get_one(tokens, len(ids))) != 0:
                raise RuntimeError(f"llama.cpp could not embed a text of {len(ids)} tokens")
            pointer = lib.llama_get_embeddings_seq(ctx, 0)
            vector = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), (self.dim,))
            out[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return out


class OnnxEncoder(SentenceEncoder):
    """The encoder on ONNX Runtime (``model.onnx``, exported from the safetensors; mean pooling here).

    The texts of one call run as one padded batch (the attention mask keeps the
    padding out of every vector). The threads sleep between runs instead of
    spinning, so an idle encoder leaves the CPU to the dialogue and generation.
    """

    runtime = ONNX

    def __init__(self, model_dir: Path, max_tokens: int = DEFAULT_MAX_TOKENS, threads: int = 0) -> None:
        path, onnxruntime = _runtime_files(model_dir, ONNX_NAME, "onnxruntime")
        super().__init__(model_dir, max_tokens)
        start = time.perf_counter()
        threads = _threads(threads)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime's errors derive from Exception only
            raise EncoderUnavailable(f"ONNX Runtime cannot load {path}: {error}") from error
        self.dim = int(self._session.get_outputs()[0].shape[-1])
        logger.info(f"Sentence encoder {model_dir.name} loaded on ONNX Runtime ({threads} threads) "
                    f"in {time.perf_counter() - start:.1f} s.")

    def hidden_states(self, batch: List[List[int]]) -> Tuple[np.ndarray, np.ndarray]:
        """The last hidden states of a padded batch of token ids, and its attention mask."""
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        return self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0], mask

    def _forward(self, batch: List[List[int]]) -> np.ndarray:
        hidden, mask = self.hidden_states(batch)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)


def choose_runtime(model_dir: Path, runtime: Optional[str] = None) -> str:
    """``onnx``, else ``llama_cpp``, when the folder has that runtime's file and its package imports; else ``torch``."""
    import importlib.util

    runtime = runtime or os.environ.get(RUNTIME_ENV) or ""
    if runtime:
        if runtime not in RUNTIMES:
            raise EncoderUnavailable(f"{RUNTIME_ENV} must be one of {list(RUNTIMES)}, got {runtime!r}")
        return runtime
    for name, file_name, package in ((ONNX, ONNX_NAME, "onnxruntime"), (LLAMA_CPP, GGUF_NAME, "llama_cpp")):
        if (model_dir / file_name).exists():
            if importlib.util.find_spec(package) is not None:
                return name
            logger.info(f"{model_dir / file_name} exists but {package} is not installed: not the {name} runtime.")
    return TORCH


ENCODERS_BY_RUNTIME: Dict[str, Any] = {ONNX: OnnxEncoder, LLAMA_CPP: LlamaCppEncoder, TORCH: TorchEncoder}


def load_encoder(
    model_dir: Path, max_tokens: int = DEFAULT_MAX_TOKENS, runtime: Optional[str] = None
) -> SentenceEncoder:
    """A new encoder for ``model_dir`` on the chosen runtime."""
    return ENCODERS_BY_RUNTIME[choose_runtime(model_dir, runtime)](model_dir, max_tokens)


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
            encoder = load_encoder(resolve(model), max_tokens)
            _ENCODERS[key] = encoder
        return encoder


def loaded_encoders() -> List[Any]:
    """The encoders this process has loaded (a test checks there is one)."""
    return list(_ENCODERS.values())
