from bot.nlu.normalise import MAX_NLU_CHARS, normalise, to_simplified


def test_traditional_characters_become_simplified():
    assert normalise("暖氣不熱") == "暖气不热"
    assert normalise("電梯壞了，樓裡的人下不去") == "电梯坏了,楼里的人下不去"


def test_full_width_forms_become_half_width():
    assert normalise("和平新村３号楼２单元５０１") == "和平新村3号楼2单元501"
    assert normalise("ＡＢＣ　ｄｅｆ") == "abc def"


def test_simplified_text_is_left_alone():
    text = "俺家暖气不热好几天了"
    assert normalise(text) == text


def test_stretched_characters_are_shortened():
    assert normalise("冷冷冷冷冷冷冷冷") == "冷冷冷"
    assert normalise("啊啊啊") == "啊啊啊"


def test_whitespace_is_collapsed():
    assert normalise("  暖气 \n\t 不热  ") == "暖气 不热"


def test_intent_triggers_from_channels_pass_unchanged():
    trigger = '/share_location{"latitude": 36.66, "label": "和平新村"}'
    assert normalise(trigger) == trigger


def test_long_messages_are_cut_for_classification():
    assert len(normalise("暖" * 5000)) <= MAX_NLU_CHARS
    assert normalise("暖气不热" * 10, max_chars=None) == "暖气不热" * 10


def test_empty_and_symbol_only_messages():
    assert normalise("") == ""
    assert normalise("？？？") == "???"
    assert normalise("😡😡") == "😡😡"


def test_to_simplified_uses_opencc_phrases():
    # a phrase-level conversion a character table gets wrong
    assert to_simplified("頭髮") == "头发"
