"""Custom actions for the assistant, served by ``python -m rasa_safe_hybrid.actions.server``
(rasa-sdk's server on loopback behind a shared secret; ``make actions``).

The package is imported by the rasa-sdk action server, which registers every
``Action`` subclass it finds in the submodules. Importing it does no work: the
store opens its database on first use.
"""
