"""Custom Rasa graph components of the safe hybrid assistant.

Reference them in ``config.yml`` by dotted path, e.g.
``components.emergency_detector.EmergencyDetector``. Importing this package
loads no model and opens no file.
"""

from components.emergency_detector import EmergencyDetector

__all__ = ["EmergencyDetector"]
