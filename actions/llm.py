"""The LLM turn: the plugin's action (``components.llm_action``), registered here."""

from components.llm_action import ActionLLMResponse, conversation_history

__all__ = ["ActionLLMResponse", "conversation_history"]
