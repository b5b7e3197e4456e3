"""Rasa NLU components: the featurizer, the intent classifier, the input rails, emergency detection."""
