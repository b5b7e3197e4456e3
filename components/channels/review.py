"""The conversation review page and its API, for the people who run the assistant.

Configured in credentials.yml like any channel::

    rasa_safe_hybrid.channels.review.ReviewInput:
      secret: ${REVIEW_SECRET}     # reviewers' secret, NOT the REST token
      db: ${REVIEW_DB_URL}         # optional; default sqlite:///var/review.db

Routes (under ``/webhooks/review``):

- ``GET /``: the page; without a reviewer's session, a 401 with a sign-in form and nothing else;
- ``POST /login`` ``{"secret", "reviewer"}``: a session cookie (HttpOnly, SameSite=Strict, 12 h);
- ``GET /api/conversations?page=&model=1&rail=NAME&emergency=1&triage=1&low_confidence=1&replaced=1&
  failed_action=1&unreviewed=1``: newest first, 25 a page;
- ``GET /api/conversations/<id>``: its turns (as ``make trace`` reads them) and its ratings;
- ``POST /api/ratings`` / ``DELETE /api/ratings``: rate one thing a turn did, or take it back.

The API takes the session cookie plus the ``X-Review-Csrf`` header the page
carries, or ``Authorization: Bearer <secret>`` with ``X-Reviewer: <name>`` for
scripts. Secrets and signatures are compared in constant time. The tracker
store is only read; ratings live in their own tables (``rasa_safe_hybrid.review.store``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from rasa_safe_hybrid.channels.common import json_body
from rasa_safe_hybrid.review.store import (
    DEFAULT_DB,
    FILTERS,
    ReviewError,
    ReviewStore,
    check_key,
    check_rating,
    sql_tracker_store,
)
from rasa_safe_hybrid.review.turns import turns
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).resolve().parent / "review_page"
STATIC = {"review.js": "application/javascript", "review.css": "text/css"}
SESSION_COOKIE = "review_session"
SESSION_S = 12 * 3600
MAX_BODY = 16 * 1024
MAX_REVIEWER = 64
_REVIEWER = re.compile(r"^[\w .@'-]{1,64}$", re.UNICODE)
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "frame-ancestors 'none'; form-action 'self'"}


def rail_names() -> List[str]:
    """Every rail a turn can show: the registry's and the emergency detector's."""
    from rasa_safe_hybrid.emergency import CLASSIFIER_RAIL, INTENT_RAIL, PATTERN_RAIL, WORDS_RAIL
    from rasa_safe_hybrid.guardrails.registry import RAILS

    return sorted(set(RAILS) | {PATTERN_RAIL, WORDS_RAIL, CLASSIFIER_RAIL, INTENT_RAIL})


def _sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


class ReviewInput(InputChannel):
    """Serves the review page; receives no user messages."""

    @classmethod
    def name(cls) -> str:
        """The channel's name: its routes are under /webhooks/review/."""
        return "review"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel from its credentials.yml entry (secret, db, trace_slot)."""
        credentials = credentials or {}
        return cls(str(credentials.get("secret") or ""), str(credentials.get("db") or DEFAULT_DB),
                   str(credentials.get("trace_slot") or "llm_trace"))

    def __init__(self, secret: str, db: str = DEFAULT_DB, trace_slot: str = "llm_trace") -> None:
        secret = secret.strip()
        if len(secret) < 16:
            raise RasaException("The review channel needs a `secret` of at least 16 characters in credentials.yml "
                                "(`secret: ${REVIEW_SECRET}`).")
        rest_token = os.environ.get("RASA_AUTH_TOKEN", "")
        if rest_token and hmac.compare_digest(secret.encode(), rest_token.strip().encode()):
            raise RasaException("The review channel's `secret` is the REST token: give reviewers a secret of "
                                "their own (REVIEW_SECRET), so no chat user can reach the ratings.")
        self.secret = secret
        self.db = db
        self.trace_slot = trace_slot
        self._store: Optional[ReviewStore] = None
        self._sync_lock = asyncio.Lock()

    # -- who is asking -------------------------------------------------------------------
    def session_cookie(self, reviewer: str, now: Optional[float] = None) -> str:
        """``<reviewer, base64>.<expiry>.<signature>``: the signed session of one reviewer."""
        name = base64.urlsafe_b64encode(reviewer.encode()).decode().rstrip("=")
        expiry = int((now or time.time()) + SESSION_S)
        return f"{name}.{expiry}.{_sign(self.secret, f'session|{name}|{expiry}')}"

    def csrf(self, cookie: str) -> str:
        """The token the page sends with every change (a site that is not the page cannot read it)."""
        return _sign(self.secret, f"csrf|{cookie}")[:40]

    def session_reviewer(self, cookie: str, now: Optional[float] = None) -> Optional[str]:
        """The reviewer a valid, unexpired session cookie names."""
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        name, expiry, signature = parts
        if not hmac.compare_digest(signature.encode(), _sign(self.secret, f"session|{name}|{expiry}").encode()):
            return None
        if int(expiry) < (now or time.time()):
            return None
        try:
            return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except ValueError:
            return None

    def reviewer(self, request: Request, changing: bool = False) -> Optional[str]:
        """The reviewer behind a request (bearer secret + X-Reviewer, or session + CSRF), else None."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            supplied = header[7:].strip()
            name = (request.headers.get("x-reviewer") or "").strip()
            if hmac.compare_digest(supplied.encode(), self.secret.encode()) and _REVIEWER.match(name):
                return name
            return None
        cookie = request.cookies.get(SESSION_COOKIE) or ""
        name = self.session_reviewer(cookie) if cookie else None
        if name and changing:
            sent = request.headers.get("x-review-csrf") or ""
            if not hmac.compare_digest(sent.encode(), self.csrf(cookie).encode()):
                return None
        return name

    # -- data ------------------------------------------------------------------------------
    @property
    def store(self) -> ReviewStore:
        """The ratings store, opened (and its tables created) on first use."""
        if self._store is None:
            self._store = ReviewStore(self.db)
        return self._store

    async def synced_store(self, request: Request) -> ReviewStore:
        """The store with its conversation index brought up to date (one sync at a time)."""
        tracker_store = sql_tracker_store(request.app.ctx.agent.tracker_store)
        async with self._sync_lock:
            await asyncio.to_thread(self.store.sync, tracker_store.engine)
        return self.store

    async def conversation(self, request: Request, sender: str) -> Optional[List[Dict[str, Any]]]:
        """The turns of one stored conversation, None when the tracker store has none."""
        tracker_store = request.app.ctx.agent.tracker_store
        tracker = await tracker_store.retrieve_full_tracker(sender)
        if tracker is None or not tracker.events:
            return None
        return turns([e.as_dict() for e in tracker.events], self.trace_slot)

    @staticmethod
    def choices(request: Request) -> Dict[str, List[str]]:
        """What a rating may name: the domain's intents, the rails."""
        domain = request.app.ctx.agent.domain
        return {"intents": sorted(str(i) for i in (domain.intents if domain else [])), "rails": rail_names()}

    # -- routes ----------------------------------------------------------------------------
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Routes: the page, its files, sign-in, the API."""
        review = Blueprint(f"review_{type(self).__name__}", __name__)

        def denied() -> HTTPResponse:
            return response.json({"error": "reviewers only: sign in on the review page, or send "
                                           "`Authorization: Bearer <review secret>` and `X-Reviewer: <name>`"},
                                 status=401, headers={**HEADERS, "WWW-Authenticate": "Bearer"})

        def error(message: str, status: int = 400) -> HTTPResponse:
            return response.json({"error": message}, status=status, headers=HEADERS)

        @review.exception(SQLAlchemyError)
        async def database_failed(_: Request, problem: Exception) -> HTTPResponse:
            logger.error("review page: the ratings or tracker database failed: %s", problem)
            return error("the review database is not answering; try again in a moment", 503)

        @review.route("/", methods=["GET"])
        async def page(request: Request) -> HTTPResponse:
            cookie = request.cookies.get(SESSION_COOKIE) or ""
            name = self.session_reviewer(cookie) if cookie else None
            if not name:
                return response.html((PAGE_DIR / "login.html").read_text("utf-8"), status=401, headers=PAGE_HEADERS)
            html = (PAGE_DIR / "review.html").read_text("utf-8")
            html = html.replace("{{csrf}}", self.csrf(cookie)).replace(
                "{{reviewer}}", name.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;"))
            return response.html(html, headers=PAGE_HEADERS)

        @review.route("/static/<name>", methods=["GET"])
        async def static(_: Request, name: str) -> HTTPResponse:
            if name not in STATIC:
                return error("no such file", 404)
            return response.text((PAGE_DIR / name).read_text("utf-8"), content_type=STATIC[name], headers=HEADERS)

        @review.route("/login", methods=["POST"])
        async def login(request: Request) -> HTTPResponse:
            if len(request.body or b"") > MAX_BODY:
                return error("request too large", 413)
            if (request.content_type or "").startswith("application/x-www-form-urlencoded"):
                body: Any = {k: v[0] for k, v in request.form.items()}
            else:
                body, problem = json_body(request)
                if problem:
                    return error(problem)
            if not isinstance(body, dict):
                return error("send {\"secret\": ..., \"reviewer\": ...}")
            secret, name = body.get("secret"), str(body.get("reviewer") or "").strip()
            if not isinstance(secret, str) or not hmac.compare_digest(secret.strip().encode(), self.secret.encode()):
                logger.warning("review page: a sign-in with a wrong secret was refused")
                return response.json({"error": "wrong review secret"}, status=401, headers=HEADERS)
            if not _REVIEWER.match(name):
                return error(f"'reviewer' must be your name: 1 to {MAX_REVIEWER} letters, digits, spaces or .@'-")
            cookie = self.session_cookie(name)
            answer = response.json({"reviewer": name}, headers=HEADERS)
            answer.cookies[SESSION_COOKIE] = cookie
            answer.cookies[SESSION_COOKIE]["httponly"] = True
            answer.cookies[SESSION_COOKIE]["samesite"] = "Strict"
            answer.cookies[SESSION_COOKIE]["path"] = "/webhooks/review"
            answer.cookies[SESSION_COOKIE]["max-age"] = SESSION_S
            logger.info("review page: %s signed in", name)
            return answer

        @review.route("/logout", methods=["POST"])
        async def logout(_: Request) -> HTTPResponse:
            answer = response.json({"signed_out": True}, headers=HEADERS)
            answer.cookies[SESSION_COOKIE] = ""
            answer.cookies[SESSION_COOKIE]["path"] = "/webhooks/review"
            answer.cookies[SESSION_COOKIE]["max-age"] = 0
            return answer

        @review.route("/api/conversations", methods=["GET"])
        async def list_conversations(request: Request) -> HTTPResponse:
            if not self.reviewer(request):
                return denied()
            filters: Dict[str, Any] = {}
            for key in request.args:
                if key == "page":
                    continue
                if key not in FILTERS:
                    return error(f"unknown filter '{key[:40]}'; known: {', '.join(FILTERS)}")
                value = request.args.get(key)
                filters[key] = value if key == "rail" else value not in ("", "0", "false")
            page_text = request.args.get("page") or "1"
            if not page_text.isdigit() or not 1 <= int(page_text) <= 100_000:
                return error("'page' must be a page number (1, 2, ...)")
            try:
                store = await self.synced_store(request)
                total, rows = store.list_conversations(filters, int(page_text))
            except ReviewError as problem:
                return error(str(problem), 503)
            return response.json({"total": total, "page": int(page_text), "per_page": 25, "conversations": rows,
                                  "rails": self.choices(request)["rails"]}, headers=HEADERS)

        @review.route("/api/conversations/<sender:str>", methods=["GET"])
        async def one_conversation(request: Request, sender: str) -> HTTPResponse:
            if not self.reviewer(request):
                return denied()
            found = await self.conversation(request, sender)
            if found is None:
                return error(f"no conversation '{sender[:80]}' in the tracker store", 404)
            return response.json({"conversation_id": sender, "turns": found,
                                  "ratings": self.store.list_ratings(sender), **self.choices(request)},
                                 headers=HEADERS, default=str)

        @review.route("/api/ratings", methods=["POST", "DELETE"])
        async def rate(request: Request) -> HTTPResponse:
            name = self.reviewer(request, changing=True)
            if not name:
                return denied()
            if len(request.body or b"") > MAX_BODY:
                return error(f"request too large (at most {MAX_BODY // 1024} KB)", 413)
            body, problem = json_body(request)
            if problem:
                return error(problem)
            choices = self.choices(request)
            try:
                if request.method == "DELETE":
                    key = check_key(body, choices["rails"])
                else:
                    rating = check_rating(body, name, choices["intents"], choices["rails"])
                    key = (rating.conversation_id, rating.turn, rating.target, rating.rail)
            except ReviewError as problem:
                return error(str(problem))
            conversation_id, turn, target, rail = key
            found = await self.conversation(request, conversation_id)
            if found is None:
                return error(f"no conversation '{conversation_id[:80]}' in the tracker store", 404)
            if turn > len(found):
                return error(f"conversation '{conversation_id[:80]}' has {len(found)} turn(s), not {turn}", 404)
            if request.method == "DELETE":
                removed = self.store.delete(conversation_id, turn, target, rail, name)
                return response.json({"deleted": removed}, headers=HEADERS)
            stored = self.store.rate(rating, found[rating.turn - 1])
            logger.info("review: %s rated %s turn %d %s%s = %s", name, rating.conversation_id, rating.turn,
                        rating.target, f" ({rating.rail})" if rating.rail else "", rating.rating)
            return response.json(stored, headers=HEADERS)

        return review
