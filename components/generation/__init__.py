"""Reply generation behind one small protocol, one module per backend.

- ``settings``: the shared options and each backend's own (other backends'
  keys are rejected);
- ``prompt``: the messages sent to the model and the reply post-processing;
- ``base``: the ``Generation`` result and the ``Generator`` protocol;
- ``transformers_backend`` and ``llama_cpp_backend`` (in-process) and
  ``openai_backend`` (any OpenAI-compatible chat server);
- ``factory``: ``get_generator``, one loaded model per process.

Nothing here imports Rasa's graph classes, ``torch`` or ``transformers`` at
import time.
"""

from rasa_safe_hybrid.generation.base import Generation, Generator
from rasa_safe_hybrid.generation.factory import get_generator
from rasa_safe_hybrid.generation.prompt import DEFAULT_SYSTEM_PROMPT, build_messages, postprocess
from rasa_safe_hybrid.generation.settings import (
    BACKENDS,
    GenerationSettings,
    LlamaCppOptions,
    OpenAIOptions,
    TransformersOptions,
)

__all__ = [
    "BACKENDS", "DEFAULT_SYSTEM_PROMPT", "Generation", "GenerationSettings", "Generator",
    "LlamaCppOptions", "OpenAIOptions", "TransformersOptions", "build_messages", "get_generator", "postprocess",
]
