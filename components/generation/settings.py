"""Generation settings: options every backend shares, and each backend's own.

The ``generation`` block of the policy's config is flat (``model``,
``max_new_tokens``, ``gguf_file``, ``base_url``, ...). ``GenerationSettings``
splits it into the shared options and one options class per backend
(``rasa_safe_hybrid.generation.options``; which backend has which:
``rasa_safe_hybrid.generation.backends``); a key that belongs to another backend
than the selected one is rejected with a message that says which backend it
belongs to, instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional, Tuple, Type, Union

from rasa_safe_hybrid.generation.backends import BACKENDS, LLAMA_CPP, OPENAI, TRANSFORMERS
from rasa_safe_hybrid.generation.options import (
    LlamaCppOptions,
    OpenAIOptions,
    TransformersOptions,
    _fail,
    _non_negative_int,
)

# The backends' names and options classes are re-exported: callers import them from here.
__all__ = ["BACKENDS", "DEFAULT_SYSTEM_PROMPT", "LLAMA_CPP", "OPENAI", "TRANSFORMERS", "BackendOptions",
           "GenerationSettings", "LlamaCppOptions", "OpenAIOptions", "TransformersOptions"]

# Neutral: fits any assistant. An assistant's own persona and topics go into
# `generation.system_prompt` in its config.yml.
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Reply in English with one to three short, simple "
    "sentences. Do not make up names, numbers or facts. Never give a diagnosis or a "
    "medicine dose: suggest a doctor or pharmacist. If you do not know, say so."
)

BackendOptions = Union[TransformersOptions, LlamaCppOptions, OpenAIOptions]


def _options() -> Dict[str, Type[Any]]:
    """Backend name -> its options class, from the registry (``rasa_safe_hybrid.generation.backends``)."""
    return {name: backend.options for name, backend in BACKENDS.items()}




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
        options_of = _options()
        if backend not in options_of:
            _fail(f"`backend` must be one of {list(options_of)}, got {backend!r}.")
        shared = {f.name for f in fields(cls)} - {"backend", "options"}
        own = {f.name for f in fields(options_of[backend])}
        for key in sorted(set(config) - shared - own):
            other = [name for name, opts in options_of.items() if key in {f.name for f in fields(opts)}]
            if other:
                _fail(
                    f"`{key}` is an option of the {other[0]} backend, but `backend` is {backend}; "
                    f"set `backend: {other[0]}` or remove `{key}`."
                )
            _fail(f"unknown key `{key}`. Known keys for backend {backend}: {sorted(shared | own)}.")
        if "stop_tokens" in config:
            config["stop_tokens"] = tuple(config["stop_tokens"] or ())
        options = options_of[backend](**{k: config.pop(k) for k in list(config) if k in own})
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
        base_url = getattr(self.options, "base_url", None)
        if base_url:  # a remote server
            return f"{str(base_url).rstrip('/')} {self.model}"
        gguf = getattr(self.options, "gguf_file", None)
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
        options_of = _options()
        if backend in options_of and backend != self.backend:  # keep the options both backends have
            kept = {f.name for f in fields(options_of[backend])}
            data = {k: v for k, v in data.items() if k not in asdict(self.options) or k in kept}
        return GenerationSettings.from_config({**data, **overrides})
