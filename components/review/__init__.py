"""Conversation review: the turns of a stored conversation, reviewers' ratings, and their export.

The page and its API are the review channel (``rasa_safe_hybrid.channels.review``);
``python -m rasa_safe_hybrid.review export`` turns the ratings into NLU data, test
stories, fine-tuning examples and rows for the learned rails.
"""
