"""The ``transformers`` backend: a Hugging Face causal LM in this process.

It loads any causal LM by Hugging Face id or local folder, or a GGUF file
(``gguf_file``) which ``transformers`` de-quantises on load. That conversion
takes tens of seconds, so the converted weights are saved once under
``cache_dir`` and later loads read them in about a second.

``torch`` and ``transformers`` are imported inside the loader, never at import
time. No ``trust_remote_code``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, cast

from rasa_safe_hybrid.generation.base import Generation
from rasa_safe_hybrid.generation.prompt import build_messages, postprocess
from rasa_safe_hybrid.generation.settings import GenerationSettings, TransformersOptions

logger = logging.getLogger(__name__)


class TransformersGenerator:
    """A loaded model and tokenizer that turn a chat into a reply."""

    def __init__(self, settings: GenerationSettings, model: Any, tokenizer: Any) -> None:
        self.settings = settings
        self.model = model
        self.tokenizer = tokenizer
        self._lock = threading.Lock()
        stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in settings.stop_tokens]
        unk = tokenizer.unk_token_id
        self._eos_ids = sorted(
            {i for i in stop_ids if isinstance(i, int) and i != unk}
            | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())
        )

    def generate(self, history: List[Dict[str, str]], user_text: str) -> Generation:
        """Generates one reply; thread-safe (one generation at a time per model)."""
        import torch
        from transformers import MaxTimeCriteria, StoppingCriteriaList

        s = self.settings
        messages = build_messages(s, history, user_text)
        if getattr(self.tokenizer, "chat_template", None):
            inputs = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:  # a base model without a chat template: a plain transcript
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
            inputs = self.tokenizer(prompt, return_tensors="pt")
        inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        prompt_len = inputs["input_ids"].shape[1]
        pad_id = self.tokenizer.pad_token_id
        kwargs: Dict[str, Any] = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": s.do_sample,
            "repetition_penalty": s.repetition_penalty,
            "eos_token_id": self._eos_ids or None,
            "pad_token_id": pad_id if pad_id is not None else (self._eos_ids[0] if self._eos_ids else 0),
            "stopping_criteria": StoppingCriteriaList([MaxTimeCriteria(s.timeout_s)]),
        }
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
        start = time.perf_counter()
        with self._lock, torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        latency = time.perf_counter() - start
        new_ids = output[0, prompt_len:].tolist()
        stopped = bool(new_ids) and new_ids[-1] in self._eos_ids
        raw = self.tokenizer.decode(new_ids, skip_special_tokens=False)
        timed_out = latency >= s.timeout_s and not stopped
        text = postprocess(raw, s.max_reply_chars, complete=stopped)
        logger.debug(
            f"Generated {len(new_ids)} tokens in {latency:.2f} s "
            f"({'stop token' if stopped else 'limit'}): {raw!r} -> {text!r}"
        )
        return Generation(text, raw, len(new_ids), latency, timed_out, s.model_id)


def _resolve(path_or_id: str) -> str:
    """A local folder (relative to the working folder) if it exists, else a hub id."""
    candidate = Path(path_or_id).expanduser()
    return str(candidate.resolve()) if candidate.exists() else path_or_id


def _gguf_cache_dir(options: TransformersOptions, source: str) -> Path:
    gguf = Path(source) / str(options.gguf_file)
    stamp = f"{gguf.resolve()}:{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}" if gguf.exists() else (
        f"{source}:{options.gguf_file}:{options.revision}"
    )
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    return Path(options.cache_dir).expanduser().resolve() / f"{Path(str(options.gguf_file)).stem}-{digest}"


def load_model(settings: GenerationSettings) -> Tuple[Any, Any]:
    """Loads model and tokenizer; converts a GGUF file once and caches the result.

    Raises:
        RuntimeError: with advice, when the model cannot be found or loaded.
    """
    os.environ.setdefault("USE_TF", "0")  # keep transformers from importing TensorFlow
    os.environ.setdefault("USE_TORCH", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = settings.options
    if not isinstance(options, TransformersOptions):
        raise RuntimeError(f"load_model needs the transformers backend, not {settings.backend}.")
    if options.torch_threads:
        torch.set_num_threads(options.torch_threads)
    source = _resolve(settings.model)
    dtype = getattr(torch, options.dtype)
    start = time.perf_counter()
    try:
        if options.gguf_file:
            cached = _gguf_cache_dir(options, source)
            if (cached / "config.json").exists():
                model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
                tokenizer = AutoTokenizer.from_pretrained(cached)
                logger.info(f"Loaded {settings.model_id} from {cached} in {time.perf_counter() - start:.1f} s.")
            else:
                logger.info(
                    f"Converting {options.gguf_file} to transformers weights (first load only; "
                    f"cached in {cached})."
                )
                kwargs = {"gguf_file": options.gguf_file, "revision": options.revision}
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
                partial = cached.with_name(cached.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                model.save_pretrained(partial)
                tokenizer.save_pretrained(partial)
                shutil.rmtree(cached, ignore_errors=True)
                partial.rename(cached)
                model = model.to(dtype)
                logger.info(f"Converted and cached {settings.model_id} in {time.perf_counter() - start:.1f} s.")
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=options.revision)
            model = AutoModelForCausalLM.from_pretrained(source, revision=options.revision, dtype=dtype)
            logger.info(f"Loaded {settings.model_id} in {time.perf_counter() - start:.1f} s.")
    except (OSError, ValueError) as error:
        raise RuntimeError(
            f"Could not load the response model '{settings.model_id}': {error}. Check "
            f"`generation.model` and `generation.gguf_file` in the LLMResponsePolicy block of "
            f"config.yml (relative paths are read from the folder Rasa runs in). Hub models need "
            f"network access (HF_HUB_OFFLINE is {os.environ.get('HF_HUB_OFFLINE', 'unset')})."
        ) from error
    model.eval()
    return model, tokenizer


def cache_key(settings: GenerationSettings) -> Tuple[object, ...]:
    """What identifies one loaded transformers model (``rasa_safe_hybrid.generation.backends``)."""
    options = cast(TransformersOptions, settings.options)
    return (settings.model, options.gguf_file, options.revision, options.dtype)


def build(settings: GenerationSettings, cached: Optional[TransformersGenerator]) -> TransformersGenerator:
    """A generator for ``settings``, on ``cached``'s loaded weights when there are some."""
    if cached is None:
        model, tokenizer = load_model(settings)
        return TransformersGenerator(settings, model, tokenizer)
    return cached if cached.settings == settings else TransformersGenerator(settings, cached.model, cached.tokenizer)
