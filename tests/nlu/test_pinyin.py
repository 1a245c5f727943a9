"""Toneless pinyin: homophone typos and typed pinyin meet the words they mean."""

from __future__ import annotations

import pytest

from bot.nlu.pinyin import split_syllables, to_pinyin, token_pinyin


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("暖器", "暖气"),
        ("低宝", "低保"),
        ("回签房", "回迁房"),
        ("继成", "继承"),
        ("燥音", "噪音"),
        ("nuanqi", "暖气"),
        ("dibao", "低保"),
        ("huiqianfang", "回迁房"),
    ],
)
def test_homophones_and_typed_pinyin_sound_like_the_word_meant(typed, meant):
    assert token_pinyin(typed) == token_pinyin(meant)


def test_latin_that_is_not_pinyin_stays_as_it_is():
    assert token_pinyin("ok") == "ok"
    assert token_pinyin("dog") == "dog"
    assert split_syllables("xyz") is None


def test_fewest_syllables_win_and_digits_are_kept():
    assert split_syllables("zhuangxiu") == ["zhuang", "xiu"]
    assert token_pinyin("3号楼") == "3 hao lou"
    assert token_pinyin("👌") == "👌"
    assert to_pinyin("暖气 不热") == "nuan qi bu re"
