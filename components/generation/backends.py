"""The generation backends, one entry each: the registry ``generation.backend`` names.

Each entry says the backend's name, its options class (the config keys only it
reads), the module that builds it and whether it runs the model in this
process. The module provides two functions:

- ``cache_key(settings) -> tuple``: what identifies one loaded model (settings
  that share it share the weights; prompt and decoding may differ);
- ``build(settings, cached) -> Generator``: a generator for ``settings``,
  reusing ``cached`` (the generator last built under that key, or None).

``rasa_safe_hybrid.generation.factory.get_generator`` keeps one generator per key and
process. A new backend is one module and one line here (docs/plugin.md shows a
worked example). Modules are named, not imported: a backend's dependencies
(torch, llama.cpp, an HTTP client) load only when it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Type

from rasa_safe_hybrid.generation.options import LlamaCppOptions, OpenAIOptions, TransformersOptions

TRANSFORMERS = "transformers"
LLAMA_CPP = "llama_cpp"
OPENAI = "openai"


@dataclass(frozen=True)
class Backend:
    """One generation backend.

    Attributes:
        name: the value of ``generation.backend``.
        options: its options class (a frozen dataclass with ``validate()``).
        module: the module with its ``cache_key`` and ``build`` functions.
        in_process: whether it runs the model in this process (CPU-bound: one worker
            thread, ``nice`` applies); a remote one only waits on the network.
    """

    name: str
    options: Type[Any]
    module: str
    in_process: bool


BACKENDS: Dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(TRANSFORMERS, TransformersOptions, "rasa_safe_hybrid.generation.transformers_backend", in_process=True),
        Backend(LLAMA_CPP, LlamaCppOptions, "rasa_safe_hybrid.generation.llama_cpp_backend", in_process=True),
        Backend(OPENAI, OpenAIOptions, "rasa_safe_hybrid.generation.openai_backend", in_process=False),
    )
}
