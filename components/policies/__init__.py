"""Rasa dialogue policies: the LLM response policy and the emergency triage policy."""
