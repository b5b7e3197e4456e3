"""One generator per model and process: the cached factory of the registered backends."""

from __future__ import annotations

import importlib
import threading
from typing import Dict, Tuple

from rasa_safe_hybrid.generation.backends import BACKENDS
from rasa_safe_hybrid.generation.base import Generator
from rasa_safe_hybrid.generation.settings import GenerationSettings

_GENERATORS: Dict[Tuple[object, ...], Generator] = {}
_LOAD_LOCK = threading.Lock()


def get_generator(settings: GenerationSettings) -> Generator:
    """The process-wide generator for these settings (a model is loaded once).

    The backend's module (``rasa_safe_hybrid.generation.backends``) says what identifies a
    loaded model (``cache_key``: for ``transformers`` the model, GGUF file, revision and
    dtype; for ``llama_cpp`` the GGUF file, threads, context, batch and seed; for
    ``openai`` the server and model) and builds a generator that reuses it (``build``).
    """
    backend = BACKENDS[settings.backend]
    module = importlib.import_module(backend.module)
    with _LOAD_LOCK:
        key = (backend.name, *module.cache_key(settings))
        generator = module.build(settings, _GENERATORS.get(key))
        _GENERATORS[key] = generator
        return generator
