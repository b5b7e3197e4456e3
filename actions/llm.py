"""The plugin's actions (the LLM turn, the emergency triage question), registered here."""

from rasa_safe_hybrid.actions.llm_action import ActionLLMResponse, conversation_history
from rasa_safe_hybrid.actions.triage_action import ActionEmergencyTriage

__all__ = ["ActionEmergencyTriage", "ActionLLMResponse", "conversation_history"]
