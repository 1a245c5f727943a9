"""Rasa policy plugin: a pending yes/no question gets the resident's next message.

Rules pick the next action from the classified intent, so "中" classified as
out_of_scope would get the out-of-scope reply instead of answering "要撤销…吗？".
This policy outranks the rules (not a form in progress, which reads its own
answers) and sends the message to the answer action whenever
`bot.dialogue.questions.answers_pending_question` says it answers something.
It learns nothing from the training data. Configured in config.yml.
"""

from __future__ import annotations

from typing import Any

from rasa.core.constants import RULE_POLICY_PRIORITY
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.dialogue.questions import QUESTION_SLOT, answers_pending_question

ANSWER_ACTION = "action_answer_question"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class PendingQuestionPolicy(Policy):
    """Routes answers to pending yes/no questions to `answer_action`."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # above RulePolicy: the question decides, not the intent's rule
            "priority": RULE_POLICY_PRIORITY + 1,
            "answer_action": ANSWER_ACTION,
            "question_slot": QUESTION_SLOT,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Any = None,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        self.answer_action = config.get("answer_action", ANSWER_ACTION)
        self.question_slot = config.get("question_slot", QUESTION_SLOT)

    def train(
        self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any
    ) -> Resource:
        return self._resource  # nothing to learn

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        if tracker.latest_action_name == self.answer_action:
            action = ACTION_LISTEN_NAME
        else:
            message = tracker.latest_message
            intent = (message.intent or {}).get("name") if message else None
            answers = answers_pending_question(
                tracker.get_slot(self.question_slot),
                message.text if message else None,
                intent,
                active_loop=tracker.active_loop_name,
                just_listened=tracker.latest_action_name == ACTION_LISTEN_NAME,
            )
            action = self.answer_action if answers else None
        if action is not None and action in domain.action_names_or_texts:
            probabilities[domain.index_for_action(action)] = 1.0
        return self._prediction(probabilities)
