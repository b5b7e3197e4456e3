"""Each generation backend's own options (the keys of the ``generation`` block only it reads).

``rasa_safe_hybrid.generation.backends`` says which backend has which options class;
``rasa_safe_hybrid.generation.settings`` splits the flat config block into the shared
options and the selected backend's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from rasa.shared.exceptions import InvalidConfigException


def _fail(message: str) -> None:
    raise InvalidConfigException(f"generation: {message}")


def _non_negative_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _fail(f"`{name}` must be a non-negative integer, got {value!r}.")


@dataclass(frozen=True)
class TransformersOptions:
    """Options of the in-process ``transformers`` backend.

    Attributes:
        gguf_file: a GGUF file inside ``model`` to load instead of safetensors, or None.
        revision: model revision (branch, tag or commit) for hub models.
        cache_dir: where converted GGUF weights are kept (relative: to the working folder).
        torch_threads: CPU threads for torch (0: torch's default).
        dtype: ``float32`` (default, what fine-tuning trains in) or ``bfloat16``
            (1.5x faster generation on CPUs with bfloat16 instructions; measured
            in docs/generation.md).
    """

    gguf_file: Optional[str] = None
    revision: Optional[str] = None
    cache_dir: str = ".cache/converted"
    torch_threads: int = 0
    dtype: str = "float32"

    def validate(self) -> None:
        """Checks each field."""
        _non_negative_int("torch_threads", self.torch_threads)
        if self.dtype not in ("float32", "bfloat16"):
            _fail(f"`dtype` must be float32 or bfloat16, got {self.dtype!r}.")
        if self.gguf_file is not None and (not isinstance(self.gguf_file, str) or not self.gguf_file.strip()):
            _fail(f"`gguf_file` must be a file name inside `model` or null, got {self.gguf_file!r}.")


@dataclass(frozen=True)
class LlamaCppOptions:
    """Options of the in-process ``llama_cpp`` backend (llama-cpp-python on a GGUF file).

    Attributes:
        gguf_file: the GGUF file inside ``model`` (a folder); required.
        n_threads: CPU threads for generation (0: as many as the machine has, at most 4).
        n_ctx: context window in tokens (prompt + reply).
        n_batch: tokens evaluated per step while reading the prompt.
        seed: sampling seed (only used with ``do_sample``).
    """

    gguf_file: Optional[str] = None
    n_threads: int = 0
    n_ctx: int = 2048
    n_batch: int = 256
    seed: int = 0

    def validate(self) -> None:
        """Checks each field."""
        if not isinstance(self.gguf_file, str) or not self.gguf_file.strip().endswith(".gguf"):
            _fail(
                "`backend: llama_cpp` needs `gguf_file`, the name of a .gguf file inside `model` "
                f"(a folder), got {self.gguf_file!r}."
            )
        for name in ("n_threads", "seed"):
            _non_negative_int(name, getattr(self, name))
        for name, low, high in (("n_ctx", 256, 32768), ("n_batch", 8, 4096)):
            value = getattr(self, name)
            _non_negative_int(name, value)
            if not low <= value <= high:
                _fail(f"`{name}` must be between {low} and {high}, got {value}.")


@dataclass(frozen=True)
class OpenAIOptions:
    """Options of the ``openai`` backend (any OpenAI-compatible chat server).

    Attributes:
        base_url: the server's API root, e.g. http://127.0.0.1:8000/v1.
        api_key_env: environment variable holding the API key (sent as a bearer
            token when set; the key never goes into config).
        retries: extra attempts after a connection error or a 429/5xx answer.
        circuit_failures: consecutive failed requests that open the circuit
            breaker (0 disables it).
        circuit_reset_s: seconds the breaker stays open before one trial request.
    """

    base_url: Optional[str] = None
    api_key_env: str = "LLM_API_KEY"
    retries: int = 2
    circuit_failures: int = 3
    circuit_reset_s: float = 30.0

    def validate(self) -> None:
        """Checks each field."""
        if not re.match(r"https?://[^/\s]+", str(self.base_url or "")):
            _fail(
                "`backend: openai` needs `base_url`, the server's API root such as "
                f"http://127.0.0.1:8000/v1; got {self.base_url!r}."
            )
        for name in ("retries", "circuit_failures"):
            _non_negative_int(name, getattr(self, name))
        if self.retries > 10:
            _fail(f"`retries` must be at most 10, got {self.retries}.")
        if not isinstance(self.circuit_reset_s, (int, float)) or self.circuit_reset_s <= 0:
            _fail(f"`circuit_reset_s` must be a positive number, got {self.circuit_reset_s!r}.")
        if not isinstance(self.api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            _fail(
                f"`api_key_env` must be the name of an environment variable, got "
                f"{self.api_key_env!r} (put the key itself in that variable, not in config)."
            )
