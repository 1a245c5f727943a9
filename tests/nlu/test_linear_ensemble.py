"""The linear model averaged with DIET's ranking (bot/nlu/linear_ensemble.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear_ensemble import LinearEnsembleClassifier

# three "words": 0 = 暖气, 1 = 狗, 2 = 谢谢
VOCABULARY = 3


def message(counts: list[int], intent: str | None = None) -> Message:
    msg = Message(data={TEXT: "x", **({INTENT: intent} if intent else {})})
    row = scipy.sparse.coo_matrix(np.array([counts], dtype=np.float32))
    msg.add_features(Features(row, "sentence", TEXT, "test-featurizer"))
    return msg


@pytest.fixture
def storage(tmp_path):
    return LocalModelStorage(tmp_path)


def trained(storage, weight: float = 0.5) -> LinearEnsembleClassifier:
    resource = Resource("linear")
    context = ExecutionContext(GraphSchema({}), "test")
    component = LinearEnsembleClassifier.create(
        {**LinearEnsembleClassifier.get_default_config(), "linear_weight": weight},
        storage,
        resource,
        context,
    )
    examples = [message([1, 0, 0], "report_heating")] * 5 + [message([0, 1, 0], "report_pet")] * 5
    examples += [message([0, 0, 1], "thank")] * 5
    component.train(TrainingData(training_examples=examples))
    return LinearEnsembleClassifier.load(component._config, storage, resource, context)


def with_ranking(counts: list[int], ranking: dict[str, float]) -> Message:
    msg = message(counts)
    ordered = sorted(ranking.items(), key=lambda item: -item[1])
    msg.set(INTENT, {"name": ordered[0][0], "confidence": ordered[0][1]})
    msg.set(INTENT_RANKING_KEY, [{"name": n, "confidence": c} for n, c in ordered])
    return msg


def test_the_average_can_overrule_a_diet_mistake(storage):
    component = trained(storage)
    # DIET says pet, narrowly; the words say heating
    [msg] = component.process(
        [with_ranking([2, 0, 0], {"report_pet": 0.55, "report_heating": 0.45})]
    )
    assert msg.get(INTENT)["name"] == "report_heating"
    ranking = msg.get(INTENT_RANKING_KEY)
    assert ranking[0]["name"] == "report_heating"
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-5)


def test_disagreement_lowers_the_confidence(storage):
    component = trained(storage)
    [agree] = component.process([with_ranking([1, 0, 0], {"report_heating": 0.9, "thank": 0.1})])
    [disagree] = component.process([with_ranking([0, 0, 1], {"report_heating": 0.9, "thank": 0.1})])
    assert agree.get(INTENT)["confidence"] > disagree.get(INTENT)["confidence"]


def test_weight_zero_keeps_diet_and_untrained_changes_nothing(storage, tmp_path):
    component = trained(storage, weight=0.0)
    [msg] = component.process([with_ranking([0, 0, 1], {"report_pet": 0.7, "thank": 0.3})])
    assert msg.get(INTENT)["name"] == "report_pet"
    empty = LinearEnsembleClassifier.load(
        {}, LocalModelStorage(tmp_path / "none"), Resource("x"), ExecutionContext(GraphSchema({}))
    )
    [msg] = empty.process([with_ranking([0, 0, 1], {"report_pet": 0.7, "thank": 0.3})])
    assert msg.get(INTENT)["name"] == "report_pet"
