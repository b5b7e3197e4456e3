"""Reply generation with a Hugging Face causal language model.

Two backends share the settings, the prompt and the post-processing:
``transformers`` (default, in-process) and ``openai`` (any OpenAI-compatible
chat-completions server: vLLM, TGI, llama.cpp's server, Ollama; see
``components.remote_generation``).

The ``transformers`` backend loads any causal LM by Hugging Face id or local
folder, or a GGUF file (``gguf_file``) which ``transformers`` de-quantises on load. That
conversion takes tens of seconds, so the converted weights are saved once
under ``cache_dir`` and later loads read them in about a second. Each process
loads a model once (``get_generator``).

``torch`` and ``transformers`` are imported inside the loader, never at import
time. No ``trust_remote_code``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from rasa.shared.exceptions import InvalidConfigException

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly assistant. Reply in English with one to three short, simple "
    "sentences. Do not make up names, numbers or facts about any shop, order, course or "
    "person. Never give a diagnosis or a medicine dose: suggest a doctor or pharmacist. "
    "If you do not know, say so."
)

# Chat-template markers and role prefixes the reply must never contain.
_TEMPLATE_TOKENS = re.compile(r"<\|[a-zA-Z_]+\|>|</?s>|\[/?INST\]")
_ROLE_PREFIX = re.compile(r"^\s*(assistant|system|user|bot|human)\s*:\s*", re.I | re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


BACKENDS = ("transformers", "openai")


@dataclass(frozen=True)
class GenerationSettings:
    """Validated generation settings (the ``generation`` block of the policy's config).

    Attributes:
        backend: ``transformers`` (in-process) or ``openai`` (a remote server).
        model: Hugging Face model id or local folder; with ``openai``, the model
            name the server is asked for.
        gguf_file: a GGUF file inside ``model`` to load instead of safetensors, or None.
        revision: model revision (branch, tag or commit) for hub models.
        cache_dir: where converted GGUF weights are kept.
        system_prompt: persona and scope of the assistant.
        history_turns: how many earlier user/bot messages go into the prompt.
        max_new_tokens: length limit of a reply in tokens.
        do_sample: sample (True) or decode greedily (False, deterministic).
        temperature: sampling temperature (only with do_sample).
        top_p: nucleus sampling mass (only with do_sample).
        repetition_penalty: > 1 discourages repeating tokens.
        timeout_s: generation stops after this many seconds.
        max_reply_chars: replies are cut at a sentence boundary below this length.
        stop_tokens: tokens that end a reply besides the tokenizer's eos token.
        torch_threads: CPU threads for torch (0: torch's default).
        base_url: ``openai`` only: the server's API root, e.g. http://127.0.0.1:8000/v1.
        api_key_env: ``openai`` only: environment variable holding the API key
            (sent as a bearer token when set; the key never goes into config).
        retries: ``openai`` only: extra attempts after a connection error or a
            429/5xx answer (not after a read timeout).
        circuit_failures: ``openai`` only: consecutive failed requests that open
            the circuit breaker (0 disables it).
        circuit_reset_s: ``openai`` only: seconds the breaker stays open before
            one trial request is let through.
    """

    backend: str = "transformers"
    model: str = ".cache/models"
    gguf_file: Optional[str] = "SmolLM2-135M-Instruct.Q4_1.gguf"
    revision: Optional[str] = None
    cache_dir: str = ".cache/converted"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history_turns: int = 4
    max_new_tokens: int = 60
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.15
    timeout_s: float = 20.0
    max_reply_chars: int = 400
    stop_tokens: Tuple[str, ...] = ("<|im_end|>",)
    torch_threads: int = 0
    base_url: Optional[str] = None
    api_key_env: str = "LLM_API_KEY"
    retries: int = 2
    circuit_failures: int = 3
    circuit_reset_s: float = 30.0

    @classmethod
    def from_config(cls, config: Optional[Dict[str, Any]]) -> GenerationSettings:
        """Builds settings from a config dict; raises ``InvalidConfigException``."""
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InvalidConfigException(
                f"generation: unknown key(s) {unknown}. Known keys: {sorted(known)}."
            )
        if "stop_tokens" in config:
            config["stop_tokens"] = tuple(config["stop_tokens"] or ())
        settings = cls(**config)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Checks each field, then combinations of fields."""
        def fail(message: str) -> None:
            raise InvalidConfigException(f"generation: {message}")

        if self.backend not in BACKENDS:
            fail(f"`backend` must be one of {list(BACKENDS)}, got {self.backend!r}.")
        if not isinstance(self.model, str) or not self.model.strip():
            fail("`model` must be a Hugging Face model id or a local folder.")
        for name in (
            "history_turns", "max_new_tokens", "max_reply_chars", "torch_threads",
            "retries", "circuit_failures",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(f"`{name}` must be a non-negative integer, got {value!r}.")
        if self.max_new_tokens < 1 or self.max_new_tokens > 1024:
            fail(f"`max_new_tokens` must be between 1 and 1024, got {self.max_new_tokens}.")
        if self.max_reply_chars < 20:
            fail(f"`max_reply_chars` must be at least 20, got {self.max_reply_chars}.")
        if not isinstance(self.do_sample, bool):
            fail(f"`do_sample` must be true or false, got {self.do_sample!r}.")
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            fail(f"`temperature` must be a positive number, got {self.temperature!r}.")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            fail(f"`top_p` must be in (0, 1], got {self.top_p!r}.")
        if not isinstance(self.repetition_penalty, (int, float)) or self.repetition_penalty <= 0:
            fail(f"`repetition_penalty` must be a positive number, got {self.repetition_penalty!r}.")
        if not isinstance(self.timeout_s, (int, float)) or not 0 < self.timeout_s <= 600:
            fail(f"`timeout_s` must be in (0, 600] seconds, got {self.timeout_s!r}.")
        if not isinstance(self.system_prompt, str) or not self.system_prompt.strip():
            fail("`system_prompt` must be a non-empty string.")
        if self.retries > 10:
            fail(f"`retries` must be at most 10, got {self.retries}.")
        if not isinstance(self.circuit_reset_s, (int, float)) or self.circuit_reset_s <= 0:
            fail(f"`circuit_reset_s` must be a positive number, got {self.circuit_reset_s!r}.")
        if not isinstance(self.api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            fail(
                f"`api_key_env` must be the name of an environment variable, got "
                f"{self.api_key_env!r} (put the key itself in that variable, not in config)."
            )
        if self.backend == "openai" and not re.match(r"https?://[^/\s]+", str(self.base_url or "")):
            fail(
                "`backend: openai` needs `base_url`, the server's API root such as "
                f"http://127.0.0.1:8000/v1; got {self.base_url!r}."
            )
        if self.backend == "transformers" and self.base_url:
            fail("`base_url` is set but `backend` is transformers; set `backend: openai` or remove it.")
        if not self.do_sample and (self.temperature != 1.0 or self.top_p != 1.0):
            fail(
                "`temperature` or `top_p` is set but `do_sample` is false; set "
                "`do_sample: true` or remove them."
            )

    @property
    def model_id(self) -> str:
        """A readable identifier of the model for traces."""
        if self.backend == "openai":
            return f"{self.base_url.rstrip('/')} {self.model}"
        return f"{self.model}/{self.gguf_file}" if self.gguf_file else self.model

    def as_dict(self) -> Dict[str, Any]:
        """Plain dict (for persisting)."""
        data = asdict(self)
        data["stop_tokens"] = list(self.stop_tokens)
        return data


@dataclass
class Generation:
    """One generated reply."""

    text: str
    raw: str
    new_tokens: int
    latency_s: float
    timed_out: bool
    model_id: str

    @property
    def tokens_per_s(self) -> float:
        """Generation speed."""
        return self.new_tokens / self.latency_s if self.latency_s > 0 else 0.0


def postprocess(raw: str, max_chars: int, complete: bool) -> str:
    """Cleans a raw generation into a reply a user may see.

    Strips template tokens and role markers, drops repeated sentences, cuts an
    unfinished last sentence (when generation hit its length limit) and caps
    the length at a sentence boundary. May return ``""``; callers must not send
    an empty reply.

    Args:
        raw: decoded model output.
        max_chars: length cap.
        complete: whether the model stopped by itself (stop token) rather than
            by the length or time limit.
    """
    text = _TEMPLATE_TOKENS.split(raw)[0] if _TEMPLATE_TOKENS.search(raw) else raw
    text = _ROLE_PREFIX.sub("", text)
    text = " ".join(text.split())
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    if sentences and not complete and not re.search(r"[.!?][\"')\]]*$", sentences[-1]):
        sentences = sentences[:-1] or sentences  # keep a lone fragment rather than nothing
    seen, kept = set(), []
    for sentence in sentences:
        key = re.sub(r"\W+", " ", sentence.lower()).strip()
        if not re.search(r"[A-Za-z]{2,}", sentence):  # a bare list number such as "3."
            continue
        if key and key not in seen:
            seen.add(key)
            kept.append(sentence)
    reply = ""
    for sentence in kept:
        candidate = f"{reply} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        reply = candidate
    if not reply and kept:
        reply = kept[0][:max_chars].rsplit(" ", 1)[0]
    reply = re.sub(r":\s*\d{1,2}\.$", ":", reply)  # a list that was cut after "1."
    return reply[:-1] + "." if reply.endswith(":") else reply


def build_messages(
    settings: GenerationSettings, history: List[Dict[str, str]], user_text: str
) -> List[Dict[str, str]]:
    """System prompt + the last ``history_turns`` messages + the user's message."""
    turns = history[-settings.history_turns :] if settings.history_turns else []
    return [
        {"role": "system", "content": settings.system_prompt},
        *turns,
        {"role": "user", "content": user_text},
    ]


class ResponseGenerator:
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

    def build_messages(self, history: List[Dict[str, str]], user_text: str) -> List[Dict[str, str]]:
        """System prompt + the last ``history_turns`` messages + the user's message."""
        return build_messages(self.settings, history, user_text)

    def generate(self, history: List[Dict[str, str]], user_text: str) -> Generation:
        """Generates one reply; thread-safe (one generation at a time per model)."""
        import torch
        from transformers import MaxTimeCriteria, StoppingCriteriaList

        s = self.settings
        messages = self.build_messages(history, user_text)
        if getattr(self.tokenizer, "chat_template", None):
            inputs = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:  # a base model without a chat template: a plain transcript
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
            inputs = self.tokenizer(prompt, return_tensors="pt")
        inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        prompt_len = inputs["input_ids"].shape[1]
        kwargs: Dict[str, Any] = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": s.do_sample,
            "repetition_penalty": s.repetition_penalty,
            "eos_token_id": self._eos_ids or None,
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else (self._eos_ids[0] if self._eos_ids else 0),
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


_GENERATORS: Dict[Tuple[Optional[str], ...], Any] = {}
_LOAD_LOCK = threading.Lock()


def get_generator(settings: GenerationSettings) -> Any:
    """The process-wide generator for these settings (a model is loaded once).

    Returns a ``ResponseGenerator`` for the ``transformers`` backend and a
    ``components.remote_generation.RemoteGenerator`` (one circuit breaker per
    server and model) for ``openai``; both have ``generate(history, user_text)``.
    """
    if settings.backend == "openai":
        from components.remote_generation import RemoteGenerator

        key: Tuple[Optional[str], ...] = ("openai", settings.base_url, settings.model)
        with _LOAD_LOCK:
            remote = _GENERATORS.get(key)
            if remote is None or remote.settings != settings:
                remote = RemoteGenerator(settings)
                _GENERATORS[key] = remote
        return remote
    key = (settings.model, settings.gguf_file, settings.revision)
    with _LOAD_LOCK:
        generator = _GENERATORS.get(key)
        if generator is None:
            model, tokenizer = load_model(settings)
            generator = ResponseGenerator(settings, model, tokenizer)
            _GENERATORS[key] = generator
        elif generator.settings != settings:
            generator = ResponseGenerator(settings, generator.model, generator.tokenizer)
    return generator


def _resolve(path_or_id: str) -> str:
    candidate = Path(path_or_id)
    if not candidate.is_absolute():
        candidate = PROJECT_ROOT / candidate
    return str(candidate) if candidate.exists() else path_or_id


def _gguf_cache_dir(settings: GenerationSettings, source: str) -> Path:
    gguf = Path(source) / str(settings.gguf_file)
    stamp = f"{gguf.resolve()}:{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}" if gguf.exists() else (
        f"{source}:{settings.gguf_file}:{settings.revision}"
    )
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    cache = Path(settings.cache_dir)
    if not cache.is_absolute():
        cache = PROJECT_ROOT / cache
    return cache / f"{Path(str(settings.gguf_file)).stem}-{digest}"


def load_model(settings: GenerationSettings) -> Tuple[Any, Any]:
    """Loads model and tokenizer; converts a GGUF file once and caches the result.

    Raises:
        RuntimeError: with advice, when the model cannot be found or loaded.
    """
    os.environ.setdefault("USE_TF", "0")  # keep transformers from importing TensorFlow
    os.environ.setdefault("USE_TORCH", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    source = _resolve(settings.model)
    start = time.perf_counter()
    try:
        if settings.gguf_file:
            cached = _gguf_cache_dir(settings, source)
            if (cached / "config.json").exists():
                model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
                tokenizer = AutoTokenizer.from_pretrained(cached)
                logger.info(f"Loaded {settings.model_id} from {cached} in {time.perf_counter() - start:.1f} s.")
            else:
                logger.info(
                    f"Converting {settings.gguf_file} to transformers weights (first load only; "
                    f"cached in {cached})."
                )
                kwargs = {"gguf_file": settings.gguf_file, "revision": settings.revision}
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
                partial = cached.with_name(cached.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                model.save_pretrained(partial)
                tokenizer.save_pretrained(partial)
                shutil.rmtree(cached, ignore_errors=True)
                partial.rename(cached)
                logger.info(f"Converted and cached {settings.model_id} in {time.perf_counter() - start:.1f} s.")
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=settings.revision)
            model = AutoModelForCausalLM.from_pretrained(
                source, revision=settings.revision, dtype=torch.float32
            )
            logger.info(f"Loaded {settings.model_id} in {time.perf_counter() - start:.1f} s.")
    except (OSError, ValueError) as error:
        raise RuntimeError(
            f"Could not load the response model '{settings.model_id}': {error}. Check "
            f"`generation.model`/`gguf_file` in config.yml; for the default model run "
            f"`make setup`. Hub models need network access (HF_HUB_OFFLINE is "
            f"{os.environ.get('HF_HUB_OFFLINE', 'unset')})."
        ) from error
    model.eval()
    return model, tokenizer
