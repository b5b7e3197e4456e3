"""The ``openai`` generation backend: any OpenAI-compatible chat server.

vLLM, TGI, llama.cpp's server and Ollama all serve ``POST {base_url}/chat/completions``.
``OpenAIGenerator`` sends the same messages the local backend would build
(system prompt, redacted history, user text), post-processes the reply the same
way, and the action runs the same output rails on it.

Failures are bounded: each request has a timeout (``timeout_s``), connection
errors and 429/5xx answers are retried ``retries`` times with a short backoff,
and after ``circuit_failures`` consecutive failed requests a circuit breaker
opens: for ``circuit_reset_s`` seconds no request is sent and ``generate`` raises
``RemoteUnavailable`` at once, so the assistant answers with its safe domain
response (``on_output.error``) instead of making every user wait for a dead
server. After that, one trial request is let through (half-open); success
closes the breaker, failure opens it again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

import requests
from rasa_safe_hybrid.generation.base import Generation
from rasa_safe_hybrid.generation.prompt import build_messages, postprocess
from rasa_safe_hybrid.generation.settings import GenerationSettings, OpenAIOptions

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
BACKOFF_S = 0.25
CONNECT_TIMEOUT_S = 3.0


class RemoteUnavailable(RuntimeError):
    """The LLM server cannot answer now (down, failing, or the breaker is open)."""


class CircuitBreaker:
    """Consecutive-failure circuit breaker (closed -> open -> half-open -> closed).

    Thread-safe; one per server and model, shared by the process's requests.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: Optional[float] = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        """The breaker's state now."""
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        if self._clock() - self._opened_at >= self.reset_s:
            return self.HALF_OPEN
        return self.OPEN

    def allow(self) -> bool:
        """Whether a request may be sent now (one trial at a time when half-open)."""
        if not self.threshold:
            return True
        with self._lock:
            state = self._state()
            if state == self.CLOSED:
                return True
            if state == self.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        """A request succeeded: close the breaker."""
        with self._lock:
            if self._opened_at is not None:
                logger.info("LLM server answered again: circuit breaker closed.")
            self._failures, self._opened_at, self._trial_in_flight = 0, None, False

    def record_failure(self) -> None:
        """A request failed (after its retries): count it; open at the threshold."""
        if not self.threshold:
            return
        with self._lock:
            self._failures += 1
            was_trial, self._trial_in_flight = self._trial_in_flight, False
            if was_trial or self._failures >= self.threshold:
                self._opened_at = self._clock()
                logger.warning(
                    f"Circuit breaker opened after {self._failures} failed LLM request(s): "
                    f"no requests for {self.reset_s:g} s, the safe response is sent instead."
                )


class OpenAIGenerator:
    """Generates replies through an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, settings: GenerationSettings, session: Optional[requests.Session] = None) -> None:
        if not isinstance(settings.options, OpenAIOptions):
            raise ValueError(f"OpenAIGenerator needs `backend: openai`, not {settings.backend}.")
        self.settings = settings
        self.options: OpenAIOptions = settings.options
        self.url = f"{str(self.options.base_url).rstrip('/')}/chat/completions"
        self.breaker = CircuitBreaker(self.options.circuit_failures, self.options.circuit_reset_s)
        self._session = session or requests.Session()

    def _headers(self) -> Dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _payload(self, messages: List[Dict[str, str]]) -> Dict[str, Any]:
        s = self.settings
        payload: Dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature if s.do_sample else 0.0,
            "stream": False,
        }
        if s.do_sample:
            payload["top_p"] = s.top_p
        if s.stop_tokens:
            payload["stop"] = list(s.stop_tokens)
        return payload

    def _post(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        """One request with bounded retries; raises ``RemoteUnavailable``."""
        attempts = 1 + self.options.retries
        last_error = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = self._session.post(
                    self.url, json=payload, headers=self._headers(),
                    timeout=(CONNECT_TIMEOUT_S, self.settings.timeout_s),
                )
            except requests.ReadTimeout:
                raise RemoteUnavailable(
                    f"{self.url} did not answer within {self.settings.timeout_s:g} s"
                ) from None
            except requests.RequestException as error:
                last_error = f"{type(error).__name__}: {error}"
                logger.debug(f"LLM request attempt {attempt + 1}/{attempts} failed: {last_error}")
                continue
            if response.status_code in RETRY_STATUS:
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                logger.debug(f"LLM request attempt {attempt + 1}/{attempts} failed: {last_error}")
                continue
            if not response.ok:  # 4xx: our request or key is wrong; retrying will not help
                raise RemoteUnavailable(f"HTTP {response.status_code} from {self.url}: {response.text[:200]}")
            try:
                return response.json()
            except ValueError:
                raise RemoteUnavailable(f"{self.url} answered with non-JSON: {response.text[:200]!r}") from None
        raise RemoteUnavailable(f"{self.url} failed {attempts} time(s); last: {last_error}")

    def generate(self, history: List[Dict[str, str]], user_text: str) -> Generation:
        """Generates one reply; raises ``RemoteUnavailable`` when the server cannot answer."""
        s = self.settings
        if not self.breaker.allow():
            raise RemoteUnavailable(
                f"circuit breaker open: {self.url} failed {self.options.circuit_failures} time(s) "
                f"in a row; next try after {self.options.circuit_reset_s:g} s"
            )
        start = time.perf_counter()
        try:
            body = self._post(self._payload(build_messages(s, history, user_text)))
            choice = (body.get("choices") or [{}])[0]
            raw = (choice.get("message") or {}).get("content")
            if not isinstance(raw, str):
                raise RemoteUnavailable(f"{self.url} answered without choices[0].message.content")
        except RemoteUnavailable:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        latency = time.perf_counter() - start
        complete = choice.get("finish_reason") == "stop"
        new_tokens = int((body.get("usage") or {}).get("completion_tokens") or 0)
        text = postprocess(raw, s.max_reply_chars, complete=complete)
        logger.debug(
            f"{self.url} generated {new_tokens} tokens in {latency:.2f} s "
            f"({choice.get('finish_reason')}): {raw!r} -> {text!r}"
        )
        return Generation(text, raw, new_tokens, latency, False, s.model_id)


def cache_key(settings: GenerationSettings) -> Tuple[object, ...]:
    """One client (and circuit breaker) per server and model (``rasa_safe_hybrid.generation.backends``)."""
    options = cast(OpenAIOptions, settings.options)
    return (options.base_url, settings.model)


def build(settings: GenerationSettings, cached: Optional[OpenAIGenerator]) -> OpenAIGenerator:
    """The cached client when its settings are these, else a new one."""
    return cached if cached is not None and cached.settings == settings else OpenAIGenerator(settings)
