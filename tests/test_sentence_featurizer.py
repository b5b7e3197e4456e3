"""The dense sentence featurizer: the shared encoder's vector on each message, bad config refused."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa_safe_hybrid import embeddings
from rasa_safe_hybrid.nlu.sentence_featurizer import SentenceEmbeddingFeaturizer


def _create(tmp_path, **overrides):
    return SentenceEmbeddingFeaturizer.create(
        {**SentenceEmbeddingFeaturizer.get_default_config(), **overrides},
        LocalModelStorage(tmp_path),
        Resource("sentence_featurizer"),
        ExecutionContext(GraphSchema({}), "test", node_name="sentence_featurizer"),
    )


def test_each_message_gets_the_shared_encoders_sentence_vector(tmp_path):
    featurizer = _create(tmp_path)
    texts = ["which clinics are open on Saturday in Boston", "where is my parcel"]
    messages = [Message(data={"text": t}) for t in texts]
    featurizer.process(messages)
    expected = embeddings.get_encoder().encode(texts)
    for message, vector in zip(messages, expected, strict=False):
        sequence, sentence = message.get_dense_features("text", [])
        assert sequence is None  # sentence features only
        assert sentence.features.shape == (1, 384)
        assert np.allclose(sentence.features[0], vector, atol=1e-6)
        assert [(f.origin, f.type) for f in message.features] == [("sentence_featurizer", "sentence")]
    assert len(embeddings.loaded_encoders()) == 1  # the rails' encoder, not a second one


def test_training_examples_with_text_are_featurized_and_intent_only_ones_are_left(tmp_path):
    featurizer = _create(tmp_path)
    with_text = Message(data={"text": "I want to cancel my order", "intent": "cancel_order"})
    intent_only = Message(data={"intent": "greet"})
    featurizer.process_training_data(TrainingData([with_text, intent_only]))
    assert with_text.get_dense_features("text", [])[1] is not None
    assert intent_only.features == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"encoder": ""}, "`encoder` must be the folder"),
        ({"encoder": 3}, "`encoder` must be the folder"),
        ({"max_tokens": 0}, "`max_tokens` must be a whole number"),
        ({"max_tokens": "128"}, "`max_tokens` must be a whole number"),
    ],
)
def test_bad_config_is_refused_with_a_message(tmp_path, overrides, message):
    with pytest.raises(InvalidConfigException, match=message):
        _create(tmp_path, **overrides)


def test_a_missing_encoder_folder_names_the_setting_to_fix(tmp_path):
    featurizer = _create(tmp_path, encoder=str(tmp_path / "nowhere"))
    with pytest.raises(InvalidConfigException, match=r"nowhere: set the rails' `encoder` \(and the featurizer's\)"):
        featurizer.process([Message(data={"text": "hello"})])
