"""Rasa NLU component that normalises text before the tokenizer.

Kept apart from `bot.nlu.normalise` so that the normalisation itself is usable
and testable without Rasa. The original text stays available to actions as
`original_text` in the parse data.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.negation import drop_denied_matter
from bot.nlu.normalise import MAX_NLU_CHARS, normalise

ORIGINAL_TEXT = "original_text"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False)
class TextNormaliser(GraphComponent):
    """Folds traditional characters, full-width forms and noise to one form, and
    drops a leading clause that only denies a matter (bot.nlu.negation)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"max_chars": MAX_NLU_CHARS, "drop_denied_matter": True}

    def __init__(self, config: dict[str, Any]) -> None:
        self._max_chars = config.get("max_chars", MAX_NLU_CHARS)
        self._drop_denied = config.get("drop_denied_matter", True)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TextNormaliser:
        return cls(config)

    def _normalise_message(self, message: Message, keep_original: bool) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str):
            return
        normalised = normalise(text, self._max_chars)
        if self._drop_denied:
            normalised = drop_denied_matter(normalised)
        if normalised != text:
            if keep_original:
                message.set(ORIGINAL_TEXT, text, add_to_output=True)
            message.set(TEXT, normalised)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            self._normalise_message(example, keep_original=False)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            self._normalise_message(message, keep_original=True)
        return messages
