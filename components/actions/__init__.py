"""The action-server side: the LLM action, the triage action, action-failure handling, the server."""
