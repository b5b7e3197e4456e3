"""One generator per model and process: the cached factory of backends."""

from __future__ import annotations

import threading
from typing import Dict, Tuple

from components.generation.base import Generator
from components.generation.settings import (
    LLAMA_CPP,
    OPENAI,
    GenerationSettings,
    LlamaCppOptions,
    OpenAIOptions,
    TransformersOptions,
)

_GENERATORS: Dict[Tuple[object, ...], Generator] = {}
_LOAD_LOCK = threading.Lock()


def get_generator(settings: GenerationSettings) -> Generator:
    """The process-wide generator for these settings (a model is loaded once).

    ``transformers``: one loaded model per (model, gguf_file, revision, dtype);
    ``llama_cpp``: one per (GGUF file, threads, context, batch); other settings
    (prompt, decoding) reuse the loaded weights. ``openai``: one client (and
    circuit breaker) per server and model.
    """
    options = settings.options
    with _LOAD_LOCK:
        if isinstance(options, OpenAIOptions):
            from components.generation.openai_backend import OpenAIGenerator

            key: Tuple[object, ...] = (OPENAI, options.base_url, settings.model)
            remote = _GENERATORS.get(key)
            if remote is None or remote.settings != settings:
                remote = OpenAIGenerator(settings)
                _GENERATORS[key] = remote
            return remote
        if isinstance(options, LlamaCppOptions):
            from components.generation.llama_cpp_backend import LlamaCppGenerator, gguf_path, load_llama

            key = (LLAMA_CPP, str(gguf_path(settings)), options.n_threads, options.n_ctx, options.n_batch,
                   options.seed)
            local = _GENERATORS.get(key)
            if local is None:
                local = LlamaCppGenerator(settings, load_llama(settings))
                _GENERATORS[key] = local
            elif local.settings != settings:
                local = LlamaCppGenerator(settings, local.llama)
            return local
        assert isinstance(options, TransformersOptions)
        from components.generation.transformers_backend import TransformersGenerator, load_model

        key = (settings.model, options.gguf_file, options.revision, options.dtype)
        generator = _GENERATORS.get(key)
        if generator is None:
            model, tokenizer = load_model(settings)
            generator = TransformersGenerator(settings, model, tokenizer)
            _GENERATORS[key] = generator
        elif generator.settings != settings:
            generator = TransformersGenerator(settings, generator.model, generator.tokenizer)
        return generator
