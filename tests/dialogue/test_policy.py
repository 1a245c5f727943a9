"""The Rasa policy that gives a pending yes/no question the resident's next message."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.dialogue.policy import ANSWER_ACTION, PendingQuestionPolicy
from bot.dialogue.questions import cancel_question
from bot.settings import PROJECT_ROOT

DOMAIN = Domain.load(str(PROJECT_ROOT / "domain.yml"))
QUESTION = cancel_question("20261127-0001", "供暖供气").to_slot()


@pytest.fixture
def policy(tmp_path) -> PendingQuestionPolicy:
    return PendingQuestionPolicy.create(
        PendingQuestionPolicy.get_default_config(),
        LocalModelStorage(tmp_path),
        Resource("pending"),
        ExecutionContext(GraphSchema({}), "test"),
    )


def tracker(text: str, intent: str, *events) -> DialogueStateTracker:
    return DialogueStateTracker.from_events(
        "resident",
        [
            ActionExecuted(ACTION_LISTEN_NAME),
            *events,
            UserUttered(text, {"name": intent, "confidence": 0.9}),
        ],
        slots=DOMAIN.slots,
    )


def predicted(policy: PendingQuestionPolicy, state: DialogueStateTracker) -> str | None:
    prediction = policy.predict_action_probabilities(state, DOMAIN)
    if prediction.max_confidence == 0:
        return None
    return DOMAIN.action_names_or_texts[prediction.max_confidence_index]


def test_a_pending_question_takes_a_message_about_anything(policy):
    state = tracker("楼道的灯也坏了", "report_facility", SlotSet("pending_question", QUESTION))
    assert predicted(policy, state) == ANSWER_ACTION
    # and outranks the rules
    assert policy.priority > 4


def test_a_bare_yes_is_an_answer_without_a_pending_question(policy):
    assert predicted(policy, tracker("👌", "nlu_fallback")) == ANSWER_ACTION
    assert predicted(policy, tracker("暖气不热", "report_heating")) is None


def test_a_form_reads_its_own_answers(policy):
    state = tracker("中", "greet", SlotSet("pending_question", QUESTION), ActiveLoop("report_form"))
    assert predicted(policy, state) is None


def test_after_the_answer_the_assistant_listens(policy):
    state = tracker("中", "greet", SlotSet("pending_question", QUESTION))
    state.update(ActionExecuted(ANSWER_ACTION))
    assert predicted(policy, state) == ACTION_LISTEN_NAME
