"""The regression guard: is the new model at least as good as the current one?

Both are scored on the same held-out messages. The new model may be deployed
when

    new macro-F1 >= current macro-F1 - MACRO_F1_TOLERANCE   and
    new accuracy >= current accuracy - ACCURACY_TOLERANCE

Tolerance 0.005 for both. On the 192 held-out messages one message is 0.0052 of
accuracy, so the guard in effect asks for no net extra mistake, and lets
macro-F1 move by rounding noise only. Anything else is an admin's call: an
override needs a written reason (at least MIN_REASON_LENGTH characters), which
is kept with the deployment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bot.training.evaluation import Scores

ACCURACY_TOLERANCE = 0.005
MACRO_F1_TOLERANCE = 0.005
MIN_REASON_LENGTH = 10
# per-intent drops worth pointing out (they do not block on their own)
INTENT_DROP_WARNING = 0.1
_EPSILON = 1e-9  # float noise of the subtraction


@dataclass
class GuardDecision:
    allowed: bool
    reasons: list[str] = field(default_factory=list)  # why not (Chinese, for the page)
    notes: list[str] = field(default_factory=list)  # worth knowing either way
    accuracy_delta: float | None = None
    macro_f1_delta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GuardDecision | None:
        if not data:
            return None
        return cls(
            allowed=bool(data.get("allowed")),
            reasons=list(data.get("reasons") or []),
            notes=list(data.get("notes") or []),
            accuracy_delta=data.get("accuracy_delta"),
            macro_f1_delta=data.get("macro_f1_delta"),
        )


def check(current: Scores | None, new: Scores | None, *, has_current: bool = True) -> GuardDecision:
    """Compare scores measured on the same held-out set.

    `has_current=False`: nothing is serving (a first deployment), so nothing can
    get worse. A current model without comparable scores refuses: the guard
    cannot tell.
    """
    if new is None:
        return GuardDecision(False, ["新模型没有评估成绩"])
    if not has_current:
        return GuardDecision(True, notes=["当前没有正在使用的模型，无需比较"])
    if current is None:
        return GuardDecision(False, ["当前模型没有同一评估集上的成绩，无法比较"])
    accuracy_delta = new.accuracy - current.accuracy
    f1_delta = new.macro_f1 - current.macro_f1
    reasons = []
    if f1_delta < -MACRO_F1_TOLERANCE - _EPSILON:
        reasons.append(
            f"宏平均F1下降 {-f1_delta:.3f}（{current.macro_f1:.3f} → {new.macro_f1:.3f}），"
            f"超过容差 {MACRO_F1_TOLERANCE}"
        )
    if accuracy_delta < -ACCURACY_TOLERANCE - _EPSILON:
        reasons.append(
            f"准确率下降 {-accuracy_delta:.3f}（{current.accuracy:.3f} → {new.accuracy:.3f}），"
            f"超过容差 {ACCURACY_TOLERANCE}"
        )
    drops = sorted(
        (f1 - current.per_intent[intent], intent)
        for intent, f1 in new.per_intent.items()
        if intent in current.per_intent
        and current.per_intent[intent] - f1 >= INTENT_DROP_WARNING - _EPSILON
    )
    notes = []
    if drops:
        listed = "、".join(f"{intent}（{delta:+.2f}）" for delta, intent in drops)
        notes.append(f"{len(drops)}个意图的F1下降超过{INTENT_DROP_WARNING}：{listed}")
    return GuardDecision(not reasons, reasons, notes, accuracy_delta, f1_delta)


def check_override_reason(reason: str | None) -> str:
    """The cleaned reason, or ValueError when it is too short to say anything."""
    text = " ".join((reason or "").split())
    if len(text) < MIN_REASON_LENGTH:
        raise ValueError(f"强制上线需要写明理由（至少{MIN_REASON_LENGTH}个字）")
    return text
