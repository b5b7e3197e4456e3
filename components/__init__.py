"""Custom Rasa graph components of the safe hybrid assistant.

Reference them in ``config.yml`` by dotted path, e.g.
``components.llm_response_policy.LLMResponsePolicy``. Importing this package
loads no model and opens no file.
"""

from components.emergency_detector import EmergencyDetector
from components.input_rails import InputRails
from components.llm_response_policy import LLMResponsePolicy

__all__ = ["EmergencyDetector", "InputRails", "LLMResponsePolicy"]
