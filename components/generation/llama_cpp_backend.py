"""The ``llama_cpp`` backend: llama.cpp (llama-cpp-python) on a GGUF file, in this process.

It reads the quantised weights as they are (no conversion to float32, so a
fraction of the memory of the ``transformers`` backend) and generates with
llama.cpp's CPU kernels. The chat template is the one stored in the GGUF file
(the same template the ``transformers`` backend reads from it), the stop
tokens, limits and post-processing are the shared ones, and the action runs
the same output rails on the reply.

Only llama-cpp-python's core package is used (no ``[server]`` extra, which
needs pydantic 2); it is imported when the model is loaded, never at import
time. ``make setup`` installs it from the wheel built once into ``.cache/wheels``.

The repetition penalty is applied as transformers applies it (every token of
the prompt and the reply so far, logits divided or multiplied by the
penalty), not llama.cpp's own (the last 64 generated tokens only, which let
the small model echo the user's message back), so both in-process backends
decode alike.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, cast

import numpy as np
from rasa_safe_hybrid.generation.base import Generation
from rasa_safe_hybrid.generation.prompt import build_messages, postprocess
from rasa_safe_hybrid.generation.settings import GenerationSettings, LlamaCppOptions

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "`generation.backend: llama_cpp` needs llama-cpp-python in the virtualenv: "
    "`pip install 'rasa-safe-hybrid[llama]'` (it builds llama.cpp once), or set `backend: transformers`."
)


def default_threads() -> int:
    """Threads when ``n_threads`` is 0: the machine's cores, at most 4 (more rarely helps on CPU)."""
    return max(1, min(4, os.cpu_count() or 1))


def gguf_path(settings: GenerationSettings) -> Path:
    """The GGUF file the settings name (``model`` folder + ``gguf_file``)."""
    assert isinstance(settings.options, LlamaCppOptions)
    return Path(settings.model).expanduser().resolve() / str(settings.options.gguf_file)


def load_llama(settings: GenerationSettings) -> Any:
    """Loads the GGUF file with llama.cpp.

    Raises:
        RuntimeError: with what to change, when the package or the file is missing.
    """
    options = settings.options
    if not isinstance(options, LlamaCppOptions):
        raise RuntimeError(f"load_llama needs the llama_cpp backend, not {settings.backend}.")
    try:
        from llama_cpp import Llama
    except ImportError as error:
        raise RuntimeError(f"{INSTALL_HINT} ({error})") from error
    path = gguf_path(settings)
    if not path.is_file():
        raise RuntimeError(
            f"Could not load the response model '{settings.model_id}': no file {path}. Check "
            f"`generation.model` (a folder) and `generation.gguf_file` in the LLMResponsePolicy block of "
            f"config.yml (a folder holding that GGUF file)."
        )
    start = time.perf_counter()
    try:
        llama = Llama(
            model_path=str(path), n_ctx=options.n_ctx, n_batch=options.n_batch,
            n_threads=options.n_threads or default_threads(), seed=options.seed, verbose=False,
        )
    except (ValueError, RuntimeError) as error:
        raise RuntimeError(f"llama.cpp could not load {path}: {error}. Is it a GGUF model file?") from error
    logger.info(f"Loaded {path} with llama.cpp in {time.perf_counter() - start:.1f} s.")
    return llama


class RepetitionPenalty:
    """transformers' repetition penalty as a llama.cpp logits processor.

    Every token id seen so far (prompt included) gets its logit divided by
    ``penalty`` when positive and multiplied when negative.
    """

    def __init__(self, penalty: float) -> None:
        self.penalty = penalty

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The scores with the repetition penalty applied to every token seen so far."""
        seen = np.unique(input_ids)
        values = scores[seen]
        scores[seen] = np.where(values > 0, values / self.penalty, values * self.penalty)
        return scores


class LlamaCppGenerator:
    """A GGUF model loaded by llama.cpp that turns a chat into a reply."""

    def __init__(self, settings: GenerationSettings, llama: Any) -> None:
        self.settings = settings
        self.llama = llama
        self._lock = threading.Lock()

    def generate(self, history: List[Dict[str, str]], user_text: str) -> Generation:
        """Generates one reply; thread-safe (one generation at a time per model)."""
        s = self.settings
        messages = build_messages(s, history, user_text)
        from llama_cpp import LogitsProcessorList

        kwargs: Dict[str, Any] = {
            "max_tokens": s.max_new_tokens,
            "repeat_penalty": 1.0,
            "logits_processor": LogitsProcessorList([RepetitionPenalty(s.repetition_penalty)]),
            "stop": list(s.stop_tokens),
            "stream": True,
        }
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(temperature=0.0, top_k=1)  # greedy
        pieces: List[str] = []
        tokens = 0
        finish = None
        start = time.perf_counter()
        with self._lock:
            stream = self.llama.create_chat_completion(messages=messages, **kwargs)
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    content = choice.get("delta", {}).get("content")
                    if content:
                        pieces.append(content)
                        tokens += 1
                    finish = choice.get("finish_reason") or finish
                    if time.perf_counter() - start >= s.timeout_s:
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        latency = time.perf_counter() - start
        raw = "".join(pieces)
        stopped = finish == "stop"
        timed_out = latency >= s.timeout_s and not stopped
        text = postprocess(raw, s.max_reply_chars, complete=stopped)
        logger.debug(f"Generated {tokens} tokens in {latency:.2f} s ({finish or 'time limit'}): {raw!r} -> {text!r}")
        return Generation(text, raw, tokens, latency, timed_out, s.model_id)


def cache_key(settings: GenerationSettings) -> Tuple[object, ...]:
    """What identifies one loaded llama.cpp model (``rasa_safe_hybrid.generation.backends``)."""
    options = cast(LlamaCppOptions, settings.options)
    return (str(gguf_path(settings)), options.n_threads, options.n_ctx, options.n_batch, options.seed)


def build(settings: GenerationSettings, cached: Optional[LlamaCppGenerator]) -> LlamaCppGenerator:
    """A generator for ``settings``, on ``cached``'s loaded model when there is one."""
    if cached is None:
        return LlamaCppGenerator(settings, load_llama(settings))
    return cached if cached.settings == settings else LlamaCppGenerator(settings, cached.llama)
