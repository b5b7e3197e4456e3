"""Dense sentence features for the NLU pipeline from the shared sentence encoder.

Intent classification on sparse features alone (word and character n-grams)
reaches the right intent only for wordings close to the training examples. This
featurizer adds one dense vector per message, the same all-MiniLM-L6-v2
embedding the learned rails and retrieval use (``rasa_safe_hybrid.embeddings``: one
encoder per process, and an embedding computed once per message is cached, so
the rails that follow reuse it). An intent classifier reads it beside the
sparse features (this assistant: ``rasa_safe_hybrid.nlu.intent_classifier``).

It adds *sentence* features only (no per-token vectors): the encoder's word
pieces do not line up with Rasa's tokens, and intent classification reads the
sentence features. Messages without text (intent-only examples in stories)
get none, as with Rasa's own dense featurizers.

Config (``config.yml``)::

    - name: rasa_safe_hybrid.nlu.sentence_featurizer.SentenceEmbeddingFeaturizer
      encoder: .cache/models/all-MiniLM-L6-v2   # default
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa_safe_hybrid.embeddings import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    EncoderUnavailable,
    SentenceEncoder,
    get_encoder,
)

logger = logging.getLogger(__name__)

ENCODER_KEY = "encoder"
MAX_TOKENS_KEY = "max_tokens"
BATCH = 64  # messages embedded together while training


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds the shared encoder's sentence embedding to each message's text."""

    @classmethod
    def required_components(cls) -> List[type]:
        """Runs after a tokenizer, like every Rasa featurizer."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """The component's default config."""
        return {
            **DenseFeaturizer.get_default_config(),
            # Folder of the shared sentence encoder (the learned rails' `encoder`).
            ENCODER_KEY: DEFAULT_MODEL,
            MAX_TOKENS_KEY: DEFAULT_MAX_TOKENS,
        }

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        """Refuses an encoder that is not a folder name or a token limit that is not a positive number."""
        if not isinstance(config.get(ENCODER_KEY), str) or not config[ENCODER_KEY].strip():
            raise InvalidConfigException(
                f"SentenceEmbeddingFeaturizer: `{ENCODER_KEY}` must be the folder of the sentence encoder "
                f"(default {DEFAULT_MODEL}), got {config.get(ENCODER_KEY)!r}."
            )
        tokens = config.get(MAX_TOKENS_KEY)
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 8 <= tokens <= 512:
            raise InvalidConfigException(
                f"SentenceEmbeddingFeaturizer: `{MAX_TOKENS_KEY}` must be a whole number from 8 to 512, "
                f"got {tokens!r}."
            )

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> SentenceEmbeddingFeaturizer:
        """Creates the component (the encoder is loaded on first use, then shared)."""
        return cls(config, execution_context.node_name or cls.__name__)

    def __init__(self, config: Dict[str, Any], name: str) -> None:
        super().__init__(name, config)

    def _encoder(self) -> SentenceEncoder:
        try:
            return get_encoder(self._config[ENCODER_KEY], self._config[MAX_TOKENS_KEY])
        except EncoderUnavailable as error:
            raise InvalidConfigException(f"SentenceEmbeddingFeaturizer: {error}") from error

    def _featurize(self, messages: List[Message]) -> None:
        todo = [m for m in messages if isinstance(m.get(TEXT), str)]
        if not todo:
            return
        encoder = self._encoder()
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            vectors = encoder.encode([m.get(TEXT) for m in chunk])
            for message, vector in zip(chunk, vectors, strict=False):
                self.add_features_to_message(None, np.asarray(vector, dtype=np.float32)[None, :], TEXT, message)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Adds the features to every training example with text."""
        self._featurize(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Adds the features to incoming messages."""
        self._featurize(messages)
        return messages
