"""The plugin's actions (the LLM turn, the emergency triage question), registered here."""

from components.llm_action import ActionLLMResponse, conversation_history
from components.triage_action import ActionEmergencyTriage

__all__ = ["ActionEmergencyTriage", "ActionLLMResponse", "conversation_history"]
