"""Scores on the held-out set: accuracy, macro-F1, per-intent F1, confused pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.training.evaluation import (
    FALLBACK_INTENT,
    EvaluationError,
    Scores,
    confused_pairs,
    load_holdout,
    score,
)


def test_scores_of_a_small_example():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", FALLBACK_INTENT, "c"]
    s = score(gold, pred)
    assert s.accuracy == pytest.approx(4 / 6)
    # a: P 1, R 2/3 -> F1 0.8; b: P 1/2, R 1/2 -> 0.5; c: 1
    assert s.per_intent == pytest.approx({"a": 0.8, "b": 0.5, "c": 1.0})
    assert s.macro_f1 == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert s.support == {"a": 3, "b": 2, "c": 1}
    assert s.fallback_rate == pytest.approx(1 / 6)
    assert s.examples == 6


def test_confused_pairs_count_both_directions_and_not_the_fallback():
    gold = ["a", "a", "b", "c", "c", "c", "a"]
    pred = ["b", "b", "a", "a", FALLBACK_INTENT, "c", "a"]
    pairs = confused_pairs(gold, pred)
    assert [(p.a, p.b, p.a_as_b, p.b_as_a, p.total) for p in pairs] == [
        ("a", "b", 2, 1, 3),
        ("a", "c", 0, 1, 1),
    ]


def test_scores_survive_json():
    s = score(["a", "b", "b"], ["b", "b", "a"])
    again = Scores.from_dict(s.to_dict())
    assert again == s
    assert s.to_dict()["confused_pairs"][0]["total"] == 2


def test_the_held_out_set_of_the_project():
    holdout = load_holdout("tests/data/holdout_*.yml")
    assert len(holdout.examples) == 195
    assert len(set(holdout.intents)) == 25
    assert len(holdout.files) == 2
    assert holdout.hash == load_holdout("tests/data/holdout_*.yml").hash


def test_the_hash_depends_on_the_messages_not_their_order(tmp_path: Path):
    (tmp_path / "h1.yml").write_text("holdout:\n  greet: [你好, 您好]\n  thank: [谢谢]\n")
    (tmp_path / "h2.yml").write_text("holdout:\n  thank: [谢谢]\n  greet: [您好, 你好]\n")
    (tmp_path / "h3.yml").write_text("holdout:\n  greet: [你好]\n  thank: [谢谢]\n")
    hashes = [load_holdout(str(tmp_path / f"h{i}.yml")).hash for i in (1, 2, 3)]
    assert hashes[0] == hashes[1] != hashes[2]


def test_missing_or_malformed_held_out_files(tmp_path: Path):
    with pytest.raises(EvaluationError):
        load_holdout(str(tmp_path / "none_*.yml"))
    (tmp_path / "bad.yml").write_text("nlu: []\n")
    with pytest.raises(EvaluationError):
        load_holdout(str(tmp_path / "bad.yml"))
