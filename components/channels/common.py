"""Helpers shared by the channels: safe JSON bodies and a bounded seen-set."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any, Optional, Tuple

from sanic.request import Request

# Longest user message a channel passes on; longer ones are cut (the NLU and
# the rails handle 10,000 characters, but nobody types more in one message).
MAX_TEXT_CHARS = 10_000


def json_body(request: Request) -> Tuple[Optional[Any], Optional[str]]:
    """The request's JSON body, or an error text for a 400 answer."""
    body = request.body or b""
    if not body:
        return None, "empty body: send a JSON object"
    try:
        return json.loads(body.decode("utf-8")), None
    except UnicodeDecodeError:
        return None, "body is not valid UTF-8"
    except json.JSONDecodeError as error:
        return None, f"body is not valid JSON ({error.msg} at position {error.pos})"
    except ValueError as error:  # e.g. a number too large to convert
        return None, f"body is not valid JSON ({error})"


def clean_text(text: str) -> str:
    """Drops control characters other than newline and tab, and cuts the length."""
    kept = "".join(ch for ch in text if ch in "\n\t" or (ord(ch) >= 32 and ord(ch) != 127))
    return kept[:MAX_TEXT_CHARS]


class SeenIds:
    """A thread-safe, bounded set of ids seen within the last ``ttl_s`` seconds."""

    def __init__(self, max_size: int = 10_000, ttl_s: float = 3600.0) -> None:
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> bool:
        """Records ``key``; returns False when it was already seen (a duplicate)."""
        now = time.monotonic()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self.max_size or now - next(iter(self._seen.values())) > self.ttl_s
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True
