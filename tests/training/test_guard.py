"""The regression guard: deploy only what is not worse on the same held-out set."""

from __future__ import annotations

import pytest

from bot.training.evaluation import Scores
from bot.training.guard import (
    ACCURACY_TOLERANCE,
    MACRO_F1_TOLERANCE,
    check,
    check_override_reason,
)


def scores(accuracy: float, macro_f1: float, **per_intent: float) -> Scores:
    per_intent = per_intent or {"greet": macro_f1, "report_noise": macro_f1}
    return Scores(accuracy, macro_f1, per_intent, {k: 8 for k in per_intent})


def test_tolerances_are_half_a_point():
    assert ACCURACY_TOLERANCE == MACRO_F1_TOLERANCE == 0.005


def test_equal_or_better_is_allowed():
    assert check(scores(0.88, 0.91), scores(0.88, 0.91)).allowed
    decision = check(scores(0.88, 0.91), scores(0.90, 0.93))
    assert decision.allowed and decision.reasons == []
    assert decision.accuracy_delta == pytest.approx(0.02)
    assert decision.macro_f1_delta == pytest.approx(0.02)


def test_drops_within_the_tolerance_are_allowed():
    assert check(scores(0.880, 0.910), scores(0.875, 0.905)).allowed


@pytest.mark.parametrize(
    ("new", "what"),
    [((0.880, 0.904), "宏平均F1"), ((0.874, 0.910), "准确率"), ((0.6, 0.6), "宏平均F1")],
)
def test_a_drop_beyond_the_tolerance_is_refused(new, what):
    decision = check(scores(0.880, 0.910), scores(*new))
    assert not decision.allowed
    assert any(what in reason for reason in decision.reasons)


def test_one_more_mistake_in_192_is_refused():
    # one message of the held-out set is 1/192 = 0.0052 of accuracy
    current = scores(170 / 192, 0.91)
    assert not check(current, scores(169 / 192, 0.91)).allowed
    assert check(current, scores(170 / 192, 0.91)).allowed


def test_nothing_serving_means_nothing_can_get_worse():
    decision = check(None, scores(0.5, 0.5), has_current=False)
    assert decision.allowed and decision.notes


def test_without_comparable_scores_the_guard_refuses():
    assert not check(None, scores(0.9, 0.9)).allowed  # current serving, not scored
    assert not check(scores(0.9, 0.9), None).allowed


def test_big_drops_of_one_intent_are_noted_without_blocking():
    current = scores(0.90, 0.90, greet=0.9, report_noise=0.9)
    new = scores(0.91, 0.91, greet=0.7, report_noise=1.0)
    decision = check(current, new)
    assert decision.allowed
    assert decision.notes == ["1个意图的F1下降超过0.1：greet（-0.20）"]


def test_override_needs_a_written_reason():
    with pytest.raises(ValueError):
        check_override_reason("")
    with pytest.raises(ValueError):
        check_override_reason("  太慢了  ")
    assert check_override_reason(" 端到端测试：只训练了二十轮，\n分数低是预期的 ") == (
        "端到端测试：只训练了二十轮， 分数低是预期的"
    )
