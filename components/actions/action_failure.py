"""No silent turns: a custom action that cannot run answers with an apology.

In Rasa 3.6 a custom action call that fails (action server down, HTTP 5xx, an
exception inside the action, a hang) is logged by the ``MessageProcessor`` and
its events are dropped: the user gets nothing, with HTTP 200. Rasa has no hook
for this (the processor, the action endpoint and ``RemoteAction`` are not
configurable), so ``LLMResponsePolicy`` wraps ``RemoteAction.run`` when it is
created in the Rasa process: the wrapper is the one place every channel's
custom action calls go through (REST, the web page, Slack, Telegram,
``rasa shell``), which a channel-level fix would not be.

The wrapper

- bounds each call by ``action_endpoint.timeout`` (endpoints.yml, seconds;
  Rasa's own is five minutes);
- retries once, after ``retry_delay``, a call whose connection was refused (the
  request never reached the server, so running it again cannot run it twice:
  this is the window in which a supervised action server restarts);
- otherwise answers with the configured response (``on_output.action_failed``,
  default ``utter_action_failed``) and records the failure in the bot event's
  metadata (``action_failure``: action, cause), which ``make trace`` shows;
- when the action is a form's validation (``validate_<form>``), puts back the
  slots this message filled, so no unvalidated value is accepted: the form asks
  for them again and keeps the slots it had validated before;
- on a turn with an emergency signal (the ``emergency`` intent), answers with
  the emergency response for its kind (``on_output.emergency`` /
  ``emergency:self_harm``) and ends any active form, so emergency numbers never
  depend on the action server.

``ActionExecutionRejection`` (a form rejecting its slot) passes through
unchanged: it is a decision, not a failure.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Optional

from rasa_safe_hybrid.texts import SERVICE_APOLOGY

if TYPE_CHECKING:  # pragma: no cover
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

TIMEOUT_KEY = "timeout"  # action_endpoint key (endpoints.yml): seconds per action call
DEFAULT_TIMEOUT = 30.0
RETRY_DELAY = 1.0
FAILURE_KEY = "action_failure"  # BotUttered metadata key
VALIDATION_PREFIX = "validate_"
# Sent when the domain lacks the configured response, so a turn is never silent.
LAST_RESORT = SERVICE_APOLOGY
_ORIGINAL = "_safe_hybrid_original_run"


@dataclass(frozen=True)
class FailureResponses:
    """Which response answers a failed action: ``failed`` or, on an emergency turn, ``emergency(kind)``."""

    failed: str
    emergency: Callable[[Optional[str]], str]


def endpoint_timeout(endpoint: Any) -> float:
    """The per-call timeout from the action endpoint's config (seconds)."""
    value = (getattr(endpoint, "kwargs", None) or {}).get(TIMEOUT_KEY, DEFAULT_TIMEOUT)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        logger.warning(f"action_endpoint.{TIMEOUT_KEY} must be a number of seconds, got {value!r}; "
                       f"using {DEFAULT_TIMEOUT:g}.")
        return DEFAULT_TIMEOUT
    return seconds if seconds > 0 else DEFAULT_TIMEOUT


def _refused(error: BaseException) -> bool:
    """Whether the call failed before reaching the server (connection refused).

    Rasa raises its own exception inside the ``except`` for aiohttp's, so the
    connection error is the implicit context.
    """
    import aiohttp

    seen = 0
    cause: Optional[BaseException] = error
    while cause is not None and seen < 5:
        if isinstance(cause, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
            return True
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return False


def _text(error: BaseException) -> str:
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:  # some exceptions cannot print themselves; describing must not fail
        return type(error).__name__


def _describe(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    text = _text(error)
    if cause is not None:
        text += f" ({_text(cause)})"
    return text[:500]


def emergency_kind(tracker: DialogueStateTracker) -> Optional[str]:
    """``None`` when the latest user message has no emergency signal, else its kind
    (``self_harm``, ``medical`` or empty). A triage turn counts: when the question
    cannot be asked, the emergency response is sent (fail closed).
    """
    from rasa_safe_hybrid import emergency

    message = tracker.latest_message
    if message is None:
        return None
    return emergency.kind_of_message((message.intent or {}).get("name"), message.entities or [])


class ActionFailureHandler:
    """Runs a custom action call with a bound, one retry and an answer on failure."""

    def __init__(self, responses: FailureResponses, retry_delay: float = RETRY_DELAY) -> None:
        self.responses = responses
        self.retry_delay = retry_delay

    async def run(self, original: Callable[..., Awaitable[List[Any]]], action: RemoteAction,
                  output_channel: Any, nlg: Any, tracker: DialogueStateTracker, domain: Any) -> List[Any]:
        """The action's events, or the failure answer's."""
        from rasa.core.actions.action import ActionExecutionRejection

        timeout = endpoint_timeout(action.action_endpoint)
        for attempt in (1, 2):
            try:
                return await asyncio.wait_for(original(action, output_channel, nlg, tracker, domain), timeout)
            except ActionExecutionRejection:
                raise
            except asyncio.TimeoutError:
                cause = f"no answer within {timeout:g} s (action_endpoint.{TIMEOUT_KEY})"
            except Exception as error:  # every other failure must still answer the user
                if attempt == 1 and _refused(error):
                    logger.warning(f"Action '{action.name()}': connection refused; retrying once in "
                                   f"{self.retry_delay:g} s.")
                    await asyncio.sleep(self.retry_delay)
                    continue
                cause = _describe(error)
            break
        return await self.answer(action.name(), cause, output_channel, nlg, tracker)

    async def answer(self, action_name: str, cause: str, output_channel: Any, nlg: Any,
                     tracker: DialogueStateTracker) -> List[Any]:
        """The events that replace a failed action's: a bot message, and for an
        emergency turn the end of any active form.
        """
        from rasa.core.actions.action import create_bot_utterance
        from rasa.shared.core.constants import REQUESTED_SLOT
        from rasa.shared.core.events import ActiveLoop, SlotSet

        kind = emergency_kind(tracker)
        response = self.responses.failed if kind is None else self.responses.emergency(kind or None)
        try:
            message = await nlg.generate(response, tracker, output_channel.name())
        except Exception as error:  # the answer must not fail as well
            logger.error(f"Could not render '{response}' ({error}); sending the built-in apology.")
            message = None
        if not message or not (message.get("text") or message.get("custom")):
            logger.error(f"Response '{response}' is not in the domain; sending the built-in apology.")
            message = {"text": LAST_RESORT}
        message = {**message, "utter_action": response, FAILURE_KEY: {"action": action_name, "cause": cause}}
        logger.error(f"Custom action '{action_name}' could not run ({cause}); answered with '{response}'"
                     + (" (emergency turn: the form, if any, is ended)." if kind is not None else "."))
        events: List[Any] = [create_bot_utterance(message)]
        if kind is not None and tracker.active_loop_name:
            events += [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)]
        elif action_name.startswith(VALIDATION_PREFIX):
            restored = unvalidated_slots(tracker)
            if restored:
                logger.error(f"Validation '{action_name}' could not run: slots {sorted(restored)} of this "
                             f"message are not accepted; the form asks for them again.")
            events += [SlotSet(name, value) for name, value in restored.items()]
        return events


def unvalidated_slots(tracker: DialogueStateTracker) -> Dict[str, Any]:
    """Slots set since the latest user message (``requested_slot`` aside), with the values they had before it."""
    from rasa.shared.core.constants import REQUESTED_SLOT
    from rasa.shared.core.events import SlotSet, UserUttered

    events = list(tracker.events)
    latest = max((i for i, e in enumerate(events) if isinstance(e, UserUttered)), default=-1)
    before: Dict[str, Any] = {}
    for event in events[:latest]:
        if isinstance(event, SlotSet):
            before[event.key] = event.value
    changed = {e.key for e in events[latest + 1:] if isinstance(e, SlotSet) and e.key != REQUESTED_SLOT}
    return {name: before.get(name) for name in sorted(changed)}


_handler: Optional[ActionFailureHandler] = None


def install(handler: ActionFailureHandler) -> None:
    """Routes every ``RemoteAction.run`` in this process through ``handler``
    (idempotent: a later call replaces the handler, never wraps twice).
    """
    global _handler
    from rasa.core.actions.action import RemoteAction

    _handler = handler
    if getattr(RemoteAction, _ORIGINAL, None) is not None:
        return
    original = RemoteAction.run
    setattr(RemoteAction, _ORIGINAL, original)

    async def run(self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any, domain: Any) -> List[Any]:
        if _handler is None:
            return await original(self, output_channel, nlg, tracker, domain)
        return await _handler.run(original, self, output_channel, nlg, tracker, domain)

    run.__doc__ = original.__doc__
    RemoteAction.run = run  # type: ignore[method-assign]
    logger.debug("Custom action failures now answer with a response (rasa_safe_hybrid.actions.action_failure).")


def uninstall() -> None:
    """Restores Rasa's own ``RemoteAction.run`` (tests)."""
    global _handler
    from rasa.core.actions.action import RemoteAction

    original = getattr(RemoteAction, _ORIGINAL, None)
    if original is not None:
        RemoteAction.run = original  # type: ignore[method-assign]
        delattr(RemoteAction, _ORIGINAL)
    _handler = None


def failure_record(event_metadata: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``action_failure`` record of a bot event's metadata, if any."""
    record = (event_metadata or {}).get(FAILURE_KEY)
    return record if isinstance(record, dict) else None
