"""LinearIntentClassifier: trains on dense + sparse sentence features, saves numbers only,
loads back with the same predictions, and refuses bad config and missing features."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa_safe_hybrid.nlu.intent_classifier import WEIGHTS_FILE, LinearIntentClassifier

RNG = np.random.default_rng(0)
CENTRES = {"greet": RNG.normal(size=8), "order_status": RNG.normal(size=8), "cancel": RNG.normal(size=8)}
KEYWORDS = {"greet": 0, "order_status": 1, "cancel": 2}  # the n-gram each intent's texts contain


def _message(intent, dense=True, sparse=True, noise=0.3, text="some text"):
    message = Message(data={"text": text, "intent": intent})
    if dense:
        vector = CENTRES[intent] + RNG.normal(scale=noise, size=8)
        message.add_features(Features((vector / np.linalg.norm(vector))[None, :].astype(np.float32),
                                      "sentence", "text", "embedding"))
    if sparse:
        counts = np.zeros((1, 5), dtype=np.float32)
        counts[0, KEYWORDS[intent]] = 1 + RNG.integers(0, 2)
        counts[0, 3 + RNG.integers(0, 2)] = 1  # words every intent shares
        message.add_features(Features(scipy.sparse.coo_matrix(counts), "sentence", "text", "ngrams"))
    return message


def _storage(folder):
    folder.mkdir(parents=True, exist_ok=True)
    return LocalModelStorage(folder)


def _create(storage, **config):
    return LinearIntentClassifier.create({**LinearIntentClassifier.get_default_config(), **config}, storage,
                                         Resource("intent_classifier"), ExecutionContext(GraphSchema({}), "test"))


def _train_data(**kwargs):
    return TrainingData([_message(i, **kwargs) for i in CENTRES for _ in range(12)])


def test_trains_predicts_ranks_and_loads_back_from_numbers_only(tmp_path):
    storage = _storage(tmp_path)
    classifier = _create(storage)
    resource = classifier.train(_train_data())
    tests = [_message(i) for i in CENTRES for _ in range(5)]
    classifier.process(tests)
    predicted = [m.get("intent")["name"] for m in tests]
    assert predicted == [i for i in CENTRES for _ in range(5)]
    ranking = tests[0].get("intent_ranking")
    assert len(ranking) == 3 and ranking[0]["name"] == tests[0].get("intent")["name"]
    assert abs(sum(r["confidence"] for r in ranking) - 1) < 1e-5

    with storage.read_from(resource) as folder:
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as data:  # no pickle needed to read it
            assert set(data.files) == {"coef", "intercept", "intents", "idf", "dense_dim"}
    loaded = LinearIntentClassifier.load(LinearIntentClassifier.get_default_config(), storage, resource,
                                         ExecutionContext(GraphSchema({}), "test"))
    again = [Message(data=dict(m.data)) for m in tests]
    for new, old in zip(again, tests, strict=False):
        new.features = old.features
    loaded.process(again)
    assert [m.get("intent") for m in again] == [m.get("intent") for m in tests]


def test_each_kind_of_feature_alone_is_enough(tmp_path):
    for name, kwargs in (("sparse_only", {"dense": False}), ("dense_only", {"sparse": False})):
        classifier = _create(_storage(tmp_path / name))
        classifier.train(_train_data(**kwargs))
        message = _message("cancel", **kwargs)
        classifier.process([message])
        assert message.get("intent")["name"] == "cancel"


def test_a_pipeline_without_sentence_features_is_refused_with_what_to_add(tmp_path):
    classifier = _create(_storage(tmp_path))
    with pytest.raises(InvalidConfigException, match="needs sentence features"):
        classifier.train(_train_data(dense=False, sparse=False))


def test_an_untrained_classifier_leaves_messages_alone(tmp_path):
    message = Message(data={"text": "hello"})
    _create(_storage(tmp_path)).process([message])
    assert message.get("intent") is None


@pytest.mark.parametrize(
    "config, text",
    [({"C": 0}, "`C` must be a number above 0"), ({"C": "16"}, "`C` must be a number"),
     ({"sparse_weight": -1}, "`sparse_weight` must be a number 0 or more"), ({"ranking_length": 0}, "`ranking_length`"),
     ({"max_iter": 2.5}, "`max_iter` must be a whole number"),
     ({"class_weight": "auto"}, "`class_weight` must be `balanced`")],
)
def test_bad_config_is_refused_with_a_message(tmp_path, config, text):
    with pytest.raises(InvalidConfigException, match=text):
        _create(_storage(tmp_path), **config)


def test_balanced_class_weights_lift_a_rare_intent(tmp_path):
    """With one intent four times as frequent, `balanced` gives the rare ones more probability
    on an ambiguous message (halfway between two centres) than unweighted training does."""
    examples = [_message(i, sparse=False, noise=0.8) for i in CENTRES for _ in range(60 if i == "greet" else 15)]
    between = (CENTRES["greet"] + CENTRES["cancel"]) / 2
    probe = Message(data={"text": "x"})
    probe.add_features(Features((between / np.linalg.norm(between))[None, :].astype(np.float32),
                                "sentence", "text", "embedding"))
    rare = {}
    for weight in (None, "balanced"):
        classifier = _create(_storage(tmp_path / str(weight)), class_weight=weight, C=1.0)
        classifier.train(TrainingData(examples))
        row = classifier.probabilities([probe])[0]
        rare[weight] = row[classifier._intents.index("cancel")]
    assert rare["balanced"] > rare[None]
