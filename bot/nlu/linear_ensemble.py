"""Rasa NLU component: DIET's intent ranking averaged with a linear model's.

DIET learns a neural embedding of the sparse features; a logistic regression on
the same features (TF-IDF weighted: word counts, character n-grams, pinyin)
makes different mistakes, and on our data it is the better of the two on some
intents (noise reports, yes/no) and the worse on others. Their average
disagrees less confidently where they disagree, which the FallbackClassifier
after it turns into a question instead of a wrong queue. Measured in
benchmarks/README.md ("NLU: pipeline variants").

The linear model is kept as plain arrays (coefficients, intercepts, IDF
weights, class names) in the model's storage: no pickle.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

ARRAYS_FILE = "linear.npz"
CLASSES_FILE = "classes.json"


def _sentence_features(message: Message) -> scipy.sparse.csr_matrix | None:
    _, sentence = message.get_sparse_features(TEXT)
    if sentence is None:
        return None
    return scipy.sparse.csr_matrix(sentence.features)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class LinearEnsembleClassifier(GraphComponent, IntentClassifier):
    """Averages the intent ranking before it with a logistic regression's."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # weight of the linear model in the average (DIET gets the rest)
            "linear_weight": 0.5,
            # inverse regularisation strength of the logistic regression
            "C": 10.0,
            "ranking_length": 10,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        classes: list[str] | None = None,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._classes = classes or []
        self._arrays = arrays or {}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearEnsembleClassifier:
        return cls(config, model_storage, resource)

    # --- training ----------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        rows, labels = [], []
        for example in training_data.intent_examples:
            features = _sentence_features(example)
            if features is not None and example.get(INTENT):
                rows.append(features)
                labels.append(example.get(INTENT))
        if len(set(labels)) < 2:
            logger.warning("LinearEnsembleClassifier: fewer than two intents, not trained")
            return self._resource
        tfidf = TfidfTransformer(sublinear_tf=True)
        x = tfidf.fit_transform(scipy.sparse.vstack(rows))
        model = LogisticRegression(C=float(self._config["C"]), max_iter=3000)
        model.fit(x, labels)
        self._classes = [str(c) for c in model.classes_]
        self._arrays = {
            "coef": model.coef_.astype(np.float32),
            "intercept": model.intercept_.astype(np.float32),
            "idf": tfidf.idf_.astype(np.float32),
        }
        self.persist()
        return self._resource

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            np.savez(directory / ARRAYS_FILE, **self._arrays)
            (directory / CLASSES_FILE).write_text(json.dumps(self._classes), encoding="utf-8")

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearEnsembleClassifier:
        try:
            with model_storage.read_from(resource) as directory:
                with np.load(directory / ARRAYS_FILE, allow_pickle=False) as data:
                    arrays = {key: data[key] for key in data.files}
                classes = json.loads((directory / CLASSES_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError, OSError):
            logger.warning("LinearEnsembleClassifier: no trained model, DIET's ranking is kept")
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, classes, arrays)

    # --- inference ---------------------------------------------------------------

    def _linear_probabilities(self, features: scipy.sparse.csr_matrix) -> np.ndarray:
        x = features.astype(np.float32).tocsr(copy=True)
        x.data = 1.0 + np.log(x.data)  # sublinear tf, as in training
        x = x.multiply(self._arrays["idf"]).tocsr()
        norm = np.sqrt(x.multiply(x).sum())
        if norm > 0:
            x = x / norm
        scores = np.asarray(x @ self._arrays["coef"].T).ravel() + self._arrays["intercept"]
        scores -= scores.max()
        exp = np.exp(scores)
        return exp / exp.sum()

    def process(self, messages: list[Message]) -> list[Message]:
        if not self._classes:
            return messages
        weight = float(self._config["linear_weight"])
        for message in messages:
            features = _sentence_features(message)
            ranking = message.get(INTENT_RANKING_KEY) or []
            if features is None or not ranking:
                continue
            combined = {
                str(r[INTENT_NAME_KEY]): (1 - weight) * float(r["confidence"]) for r in ranking
            }
            linear = self._linear_probabilities(features)
            for name, probability in zip(self._classes, linear, strict=True):
                combined[name] = combined.get(name, 0.0) + weight * float(probability)
            ordered = sorted(combined.items(), key=lambda item: item[1], reverse=True)
            ordered = ordered[: int(self._config["ranking_length"])]
            message.set(
                INTENT,
                {INTENT_NAME_KEY: ordered[0][0], "confidence": ordered[0][1]},
                add_to_output=True,
            )
            message.set(
                INTENT_RANKING_KEY,
                [{INTENT_NAME_KEY: name, "confidence": value} for name, value in ordered],
                add_to_output=True,
            )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
