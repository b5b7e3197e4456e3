"""The project's actions with one broken: ``action_check_order_status`` raises.

For the fault tests: ``python -m rasa_safe_hybrid.actions.server --actions
tests.fakes.raising_actions``. rasa-sdk registers every ``Action`` subclass it has
imported, subclasses after their parents, so the raising subclass replaces the
real action under the same name; every other action is the real one.
"""

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import customer_service, education, llm, medical  # noqa: F401 - registers the real actions
from actions.customer_service import ActionCheckOrderStatus

FAULT = "injected fault: the order store is unreachable"


class RaisingCheckOrderStatus(ActionCheckOrderStatus):
    """``action_check_order_status`` that raises inside the action."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[str, Any]) -> List[Dict[str, Any]]:
        raise RuntimeError(FAULT)
