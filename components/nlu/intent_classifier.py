"""Intent classification on the shared sentence embedding plus the sparse n-gram features.

With about twenty examples per intent, DIET trained from scratch reached a
3-fold weighted intent F1 of 0.67 on this assistant's data, with or without
the dense sentence features; a multinomial logistic regression on the
sentence embedding (``SentenceEmbeddingFeaturizer``) next to TF-IDF-weighted
sparse sentence features (Rasa's ``CountVectorsFeaturizer``s) reached
0.84-0.87, depending on how the folds fall (docs/evaluation.md has the runs).
The embedding carries paraphrases, the n-grams carry spellings and keywords.

The component reads the sentence-level features of every featurizer before it
(dense: as they are; sparse: sublinear TF, IDF from the training data, L2
normalised, times ``sparse_weight``), trains with scikit-learn, and keeps only
numbers: the weights, biases, IDF vector and intent names are saved as a
``.npz`` file (no pickle), and prediction is a matrix product and a softmax.
Confidences are the softmax probabilities; ``FallbackClassifier`` after it
turns low ones into ``nlu_fallback``.

Config (``config.yml``)::

    - name: rasa_safe_hybrid.nlu.intent_classifier.LinearIntentClassifier
      C: 16              # inverse regularisation strength
      sparse_weight: 0.5 # weight of the n-gram part against the embedding
      class_weight: null # or `balanced`: intents weighted by the inverse of their example count
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

C_KEY = "C"
SPARSE_WEIGHT_KEY = "sparse_weight"
RANKING_KEY = "ranking_length"
SEED_KEY = "random_seed"
MAX_ITER_KEY = "max_iter"
CLASS_WEIGHT_KEY = "class_weight"
WEIGHTS_FILE = "linear_intent_classifier.npz"


def sentence_features(message: Message) -> Tuple[Optional[np.ndarray], Optional[scipy.sparse.csr_matrix]]:
    """The message's dense and sparse sentence-level text features (each ``None`` when absent)."""
    _, dense = message.get_dense_features(TEXT, [])
    _, sparse = message.get_sparse_features(TEXT, [])
    return (None if dense is None else np.asarray(dense.features, dtype=np.float32).reshape(-1),
            None if sparse is None else scipy.sparse.csr_matrix(sparse.features, dtype=np.float32))


def _fit_width(row: Optional[scipy.sparse.csr_matrix], width: int) -> scipy.sparse.csr_matrix:
    """A 1 x ``width`` sparse row: the features cut or padded to the trained vocabulary's size."""
    if row is None:
        return scipy.sparse.csr_matrix((1, width), dtype=np.float32)
    row = row.copy()
    row.resize((1, width))
    return row


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    """Multinomial logistic regression on dense + TF-IDF sparse sentence features."""

    @classmethod
    def required_components(cls) -> List[type]:
        """Runs after the featurizers whose sentence features it reads."""
        return [Featurizer]

    @staticmethod
    def required_packages() -> List[str]:
        """scikit-learn trains the regression (prediction needs numpy only)."""
        return ["sklearn"]

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """The component's default config."""
        return {C_KEY: 16.0, SPARSE_WEIGHT_KEY: 0.5, RANKING_KEY: 10, SEED_KEY: 42, MAX_ITER_KEY: 3000,
                CLASS_WEIGHT_KEY: None}

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 weights: Optional[Dict[str, np.ndarray]] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._validate(self._config)
        self._storage = model_storage
        self._resource = resource
        self._weights = weights
        self._intents = [] if weights is None else [str(i) for i in weights["intents"]]

    @staticmethod
    def _validate(config: Dict[str, Any]) -> None:
        for key, zero_allowed in ((C_KEY, False), (SPARSE_WEIGHT_KEY, True)):
            value = config.get(key)
            number = not isinstance(value, bool) and isinstance(value, (int, float))
            if not number or float(value or 0) < 0 or (value == 0 and not zero_allowed):
                bound = "0 or more" if zero_allowed else "above 0"
                raise InvalidConfigException(
                    f"LinearIntentClassifier: `{key}` must be a number {bound}, got {value!r}."
                )
        if config.get(CLASS_WEIGHT_KEY) not in (None, "balanced"):
            raise InvalidConfigException(
                f"LinearIntentClassifier: `{CLASS_WEIGHT_KEY}` must be `balanced` (each intent weighted by "
                f"the inverse of its example count) or null (every example weighs 1), "
                f"got {config.get(CLASS_WEIGHT_KEY)!r}.")
        for key in (RANKING_KEY, MAX_ITER_KEY):
            value = config.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfigException(
                    f"LinearIntentClassifier: `{key}` must be a whole number of at least 1, got {value!r}.")

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> LinearIntentClassifier:
        """A new, untrained component."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> LinearIntentClassifier:
        """The trained component (untrained when its weights were never written)."""
        try:
            with model_storage.read_from(resource) as folder:
                with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as data:
                    weights = {key: data[key] for key in data.files}
        except (ValueError, FileNotFoundError):
            logger.debug(f"LinearIntentClassifier: no trained weights in '{resource.name}'.")
            weights = None
        return cls(config, model_storage, resource, weights)

    # -- features ---------------------------------------------------------------
    def _matrix(self, rows: List[Tuple[Optional[np.ndarray], Optional[scipy.sparse.csr_matrix]]],
                idf: Optional[np.ndarray], dense_dim: int) -> scipy.sparse.csr_matrix:
        dense = np.zeros((len(rows), dense_dim), dtype=np.float32)
        parts = []
        for i, (vector, _) in enumerate(rows):
            if dense_dim and vector is not None and vector.shape[0] == dense_dim:
                dense[i] = vector
        parts.append(scipy.sparse.csr_matrix(dense))
        if idf is not None:
            counts = scipy.sparse.vstack([_fit_width(s, idf.shape[0]) for _, s in rows]).tocsr()
            counts.eliminate_zeros()
            counts.data = 1.0 + np.log(np.maximum(counts.data, 1e-12))  # sublinear term frequency
            tfidf = counts.multiply(idf[None, :]).tocsr()
            norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).reshape(-1))
            tfidf = scipy.sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ tfidf
            parts.append(tfidf * float(self._config[SPARSE_WEIGHT_KEY]))
        return scipy.sparse.hstack(parts).tocsr()

    # -- training ---------------------------------------------------------------
    def train(self, training_data: TrainingData) -> Resource:
        """Fits the regression on every intent example with text features; saves the numbers."""
        from sklearn.linear_model import LogisticRegression

        examples = [m for m in training_data.intent_examples if m.get(TEXT)]
        labels = sorted({m.get(INTENT) for m in examples})
        if len(labels) < 2:
            logger.warning("LinearIntentClassifier: fewer than two intents to learn; not trained.")
            return self._resource
        rows = [sentence_features(m) for m in examples]
        dense_dims = {r[0].shape[0] for r in rows if r[0] is not None}
        if len(dense_dims) > 1:
            raise InvalidConfigException(f"LinearIntentClassifier: dense sentence features of sizes {dense_dims}")
        dense_dim = dense_dims.pop() if dense_dims else 0
        widths = [r[1].shape[1] for r in rows if r[1] is not None]
        if not dense_dim and not widths:
            raise InvalidConfigException(
                "LinearIntentClassifier needs sentence features: put a featurizer before it "
                "(rasa_safe_hybrid.nlu.sentence_featurizer.SentenceEmbeddingFeaturizer and/or CountVectorsFeaturizer).")
        idf = None
        if widths:
            width = max(widths)
            present = np.zeros(width, dtype=np.float64)
            for _, s in rows:
                if s is not None:
                    present[np.unique(s.indices)] += 1
            idf = (np.log((1 + len(rows)) / (1 + present)) + 1).astype(np.float32)
        x = self._matrix(rows, idf, dense_dim)
        index = {label: i for i, label in enumerate(labels)}
        y = np.array([index[m.get(INTENT)] for m in examples])
        model = LogisticRegression(C=float(self._config[C_KEY]), max_iter=int(self._config[MAX_ITER_KEY]),
                                   random_state=int(self._config[SEED_KEY]),
                                   class_weight=self._config[CLASS_WEIGHT_KEY])
        model.fit(x, y)
        self._weights = {
            "coef": model.coef_.astype(np.float32), "intercept": model.intercept_.astype(np.float32),
            "intents": np.array(labels), "idf": idf if idf is not None else np.zeros(0, dtype=np.float32),
            "dense_dim": np.array(dense_dim),
        }
        self._intents = list(labels)
        with self._storage.write_to(self._resource) as folder:
            np.savez(folder / WEIGHTS_FILE, **self._weights)
        logger.info(f"LinearIntentClassifier: {len(labels)} intents from {len(examples)} examples, "
                    f"{x.shape[1]} features ({dense_dim} dense).")
        return self._resource

    # -- prediction -------------------------------------------------------------
    def probabilities(self, messages: List[Message]) -> np.ndarray:
        """Softmax probabilities of every intent for each message (rows follow ``intents``)."""
        assert self._weights is not None
        idf = self._weights["idf"]
        x = self._matrix([sentence_features(m) for m in messages], idf if idf.size else None,
                         int(self._weights["dense_dim"]))
        logits = np.asarray(x @ self._weights["coef"].T) + self._weights["intercept"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets ``intent`` and ``intent_ranking`` on messages with text."""
        todo = [m for m in messages if m.get(TEXT)]
        if not todo or self._weights is None:
            return messages
        length = int(self._config[RANKING_KEY])
        for message, row in zip(todo, self.probabilities(todo), strict=False):
            order = np.argsort(-row)
            ranking = [
                {INTENT_NAME_KEY: self._intents[i], PREDICTED_CONFIDENCE_KEY: float(row[i])} for i in order[:length]
            ]
            message.set(INTENT, dict(ranking[0]), add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
