"""Generation settings: options every backend shares, and each backend's own.

The ``generation`` block of the policy's config is flat (``model``,
``max_new_tokens``, ``gguf_file``, ``base_url``, ...). ``GenerationSettings``
splits it into the shared options and one options class per backend
(``TransformersOptions``, ``OpenAIOptions``); a key that belongs to another
backend than the selected one is rejected with a message that says which
backend it belongs to, instead of being silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional, Tuple, Type, Union

from rasa.shared.exceptions import InvalidConfigException

# Neutral: fits any assistant. An assistant's own persona and topics go into
# `generation.system_prompt` in its config.yml.
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Reply in English with one to three short, simple "
    "sentences. Do not make up names, numbers or facts. Never give a diagnosis or a "
    "medicine dose: suggest a doctor or pharmacist. If you do not know, say so."
)

TRANSFORMERS = "transformers"
OPENAI = "openai"
LLAMA_CPP = "llama_cpp"


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


BackendOptions = Union[TransformersOptions, LlamaCppOptions, OpenAIOptions]
OPTIONS: Dict[str, Type[Any]] = {
    TRANSFORMERS: TransformersOptions, LLAMA_CPP: LlamaCppOptions, OPENAI: OpenAIOptions,
}
BACKENDS = tuple(OPTIONS)


@dataclass(frozen=True)
class GenerationSettings:
    """Validated generation settings (the ``generation`` block of the policy's config).

    Attributes:
        backend: ``transformers`` or ``llama_cpp`` (in-process), or ``openai`` (a
            remote server).
        model: Hugging Face model id or local folder; with ``openai``, the model
            name the server is asked for.
        system_prompt: persona and scope of the assistant.
        history_turns: how many earlier user/bot messages go into the prompt.
        max_new_tokens: length limit of a reply in tokens.
        do_sample: sample (True) or decode greedily (False, deterministic).
        temperature: sampling temperature (only with do_sample).
        top_p: nucleus sampling mass (only with do_sample).
        repetition_penalty: > 1 discourages repeating tokens.
        timeout_s: generation stops after this many seconds.
        max_queue: LLM turns that may wait for the model behind the one it is
            answering (per action server process); a turn beyond them is answered
            at once with the ``error`` response instead of waiting past the
            action endpoint's timeout.
        max_reply_chars: replies are cut at a sentence boundary below this length.
        stop_tokens: tokens that end a reply besides the tokenizer's eos token.
        nice: in-process backends: how much the generation thread yields the CPU
            to everything else (added to the process's nice value, 0-19; 0 keeps
            it equal). The ``openai`` backend's threads only wait and ignore it.
        options: the selected backend's own options.
    """

    backend: str = TRANSFORMERS
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history_turns: int = 4
    max_new_tokens: int = 60
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.15
    timeout_s: float = 20.0
    max_queue: int = 2
    max_reply_chars: int = 400
    stop_tokens: Tuple[str, ...] = ("<|im_end|>",)
    nice: int = 10
    options: BackendOptions = field(default_factory=TransformersOptions)

    @classmethod
    def from_config(cls, config: Optional[Dict[str, Any]]) -> GenerationSettings:
        """Builds settings from the flat config dict; raises ``InvalidConfigException``."""
        config = dict(config or {})
        backend = config.pop("backend", TRANSFORMERS)
        if backend not in OPTIONS:
            _fail(f"`backend` must be one of {list(BACKENDS)}, got {backend!r}.")
        shared = {f.name for f in fields(cls)} - {"backend", "options"}
        own = {f.name for f in fields(OPTIONS[backend])}
        for key in sorted(set(config) - shared - own):
            other = [name for name, opts in OPTIONS.items() if key in {f.name for f in fields(opts)}]
            if other:
                _fail(
                    f"`{key}` is an option of the {other[0]} backend, but `backend` is {backend}; "
                    f"set `backend: {other[0]}` or remove `{key}`."
                )
            _fail(f"unknown key `{key}`. Known keys for backend {backend}: {sorted(shared | own)}.")
        if "stop_tokens" in config:
            config["stop_tokens"] = tuple(config["stop_tokens"] or ())
        options = OPTIONS[backend](**{k: config.pop(k) for k in list(config) if k in own})
        settings = cls(backend=backend, options=options, **config)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Checks each field, then combinations of fields."""
        if not isinstance(self.model, str) or not self.model.strip():
            _fail("`model` must be a Hugging Face model id or a local folder.")
        for name in ("history_turns", "max_new_tokens", "max_reply_chars", "max_queue"):
            _non_negative_int(name, getattr(self, name))
        if self.max_new_tokens < 1 or self.max_new_tokens > 1024:
            _fail(f"`max_new_tokens` must be between 1 and 1024, got {self.max_new_tokens}.")
        _non_negative_int("nice", self.nice)
        if self.nice > 19:
            _fail(f"`nice` must be between 0 and 19, got {self.nice}.")
        if self.max_reply_chars < 20:
            _fail(f"`max_reply_chars` must be at least 20, got {self.max_reply_chars}.")
        if not isinstance(self.do_sample, bool):
            _fail(f"`do_sample` must be true or false, got {self.do_sample!r}.")
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            _fail(f"`temperature` must be a positive number, got {self.temperature!r}.")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            _fail(f"`top_p` must be in (0, 1], got {self.top_p!r}.")
        if not isinstance(self.repetition_penalty, (int, float)) or self.repetition_penalty <= 0:
            _fail(f"`repetition_penalty` must be a positive number, got {self.repetition_penalty!r}.")
        if not isinstance(self.timeout_s, (int, float)) or not 0 < self.timeout_s <= 600:
            _fail(f"`timeout_s` must be in (0, 600] seconds, got {self.timeout_s!r}.")
        if not isinstance(self.system_prompt, str) or not self.system_prompt.strip():
            _fail("`system_prompt` must be a non-empty string.")
        self.options.validate()
        if not self.do_sample and (self.temperature != 1.0 or self.top_p != 1.0):
            _fail(
                "`temperature` or `top_p` is set but `do_sample` is false; set "
                "`do_sample: true` or remove them."
            )

    @property
    def model_id(self) -> str:
        """A readable identifier of the model for traces."""
        if isinstance(self.options, OpenAIOptions):
            return f"{str(self.options.base_url).rstrip('/')} {self.model}"
        gguf = self.options.gguf_file
        return f"{self.model}/{gguf}" if gguf else self.model

    def as_dict(self) -> Dict[str, Any]:
        """The flat config dict these settings were built from (for persisting)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        data["stop_tokens"] = list(self.stop_tokens)
        data.update(asdict(self.options))
        return data

    def with_overrides(self, **overrides: Any) -> GenerationSettings:
        """New validated settings with some keys changed (``backend`` switches option sets)."""
        data = self.as_dict()
        backend = overrides.get("backend", self.backend)
        if backend in OPTIONS and backend != self.backend:  # keep the options both backends have
            kept = {f.name for f in fields(OPTIONS[backend])}
            data = {k: v for k, v in data.items() if k not in asdict(self.options) or k in kept}
        return GenerationSettings.from_config({**data, **overrides})
