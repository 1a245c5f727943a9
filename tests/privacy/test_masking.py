"""Masking personal data in realistic resident messages (issue 15, item 3)."""

from __future__ import annotations

import logging

import pytest

from bot.privacy import masking
from bot.privacy.masking import BANK_CARD, ID_CARD, PHONE, ROOM, mask
from bot.review.export import nlu_examples
from bot.settings import PROJECT_ROOT
from bot.training.evaluation import load_holdout

ID_NUMBER = "370102198001011237"  # check digit 7 is right
ID_NUMBER_X = "11010519491231002X"
BANK = "6222021612345678909"  # passes Luhn


def test_the_check_digits() -> None:
    assert masking.id_card_valid(ID_NUMBER) and masking.id_card_valid(ID_NUMBER_X)
    assert not masking.id_card_valid("370102198001011235")
    assert masking.luhn_valid(BANK) and not masking.luhn_valid("6222021612345678900")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("俺家暖气不热，电话13812345678，找王师傅", f"俺家暖气不热，电话{PHONE}，找王师傅"),
        ("有事打我手机 138 1234 5678 谢谢", f"有事打我手机 {PHONE} 谢谢"),
        ("联系方式：138-1234-5678", f"联系方式：{PHONE}"),
        ("我的号码是１３８１２３４５６７８", f"我的号码是{PHONE}"),
        ("电话＋86 138 1234 5678", f"电话{PHONE}"),
        ("+8613812345678回电", f"{PHONE}回电"),
        ("座机0531-88886666白天有人", f"座机{PHONE}白天有人"),
        ("打13800138000或者13900139000都行", f"打{PHONE}或者{PHONE}都行"),
        ("两个号码13800138000 13900139000", f"两个号码{PHONE} {PHONE}"),
        (f"开证明要身份证号吗？我的是{ID_NUMBER}", f"开证明要身份证号吗？我的是{ID_CARD}"),
        (f"身份证{ID_NUMBER_X.lower()}，低保申请", f"身份证{ID_CARD}，低保申请"),
        ("身份证 370102 19800101 1237", f"身份证 {ID_CARD}"),
        ("身份证３７０１０２１９８００１０１１２３７", f"身份证{ID_CARD}"),
        (f"补贴打到卡号{BANK}里了吗", f"补贴打到卡号{BANK_CARD}里了吗"),
        ("卡号 6222 0216 1234 5678 909", f"卡号 {BANK_CARD}"),
        ("和平新村3号楼2单元501暖气不热", f"和平新村3号楼2单元{ROOM}暖气不热"),
        ("我住3号楼2单元 502室，楼上漏水", f"我住3号楼2单元 {ROOM}，楼上漏水"),
        ("我是1-2-501的，楼上装修太吵", f"我是1-2-{ROOM}的，楼上装修太吵"),
        ("1201号房的狗天天叫", f"{ROOM}的狗天天叫"),
        (
            f"我叫李大爷，住裕园10号楼1单元302，电话13912345678，身份证{ID_NUMBER}",
            f"我叫李大爷，住裕园10号楼1单元{ROOM}，电话{PHONE}，身份证{ID_CARD}",
        ),
    ],
)
def test_personal_data_becomes_placeholders(message: str, expected: str) -> None:
    assert mask(message) == expected
    assert mask(expected) == expected  # masking twice changes nothing more


@pytest.mark.parametrize(
    "message",
    [
        "暖气不热好几天了 屋里才十四度",
        "屋里才14度，暖气片冰凉",
        "我反映的20261127-0001咋样了",
        "2026-11-27下午路灯还是不亮",
        "打过12345热线了没人管",
        "3号楼2单元门口垃圾没人收",
        "物业费一年交了1500元",
        "15层的电梯坏了",
        "身份证号370102198001011235",  # a wrong check digit is not an ID number
        "共享单车停了200多辆",
        "nuanqi bu re",
        "",
    ],
)
def test_messages_without_personal_data_are_unchanged(message: str) -> None:
    assert mask(message) == message
    assert not masking.has_personal_data(message)


def test_held_out_hard_and_training_sets_are_left_as_they_are() -> None:
    """Masking never breaks a message that contains no personal data: of the
    held-out set, the hard development set and the training data (thousands of
    real-style messages, with addresses, dates, temperatures, ticket numbers),
    it changes only the few that hold a room number or a phone number."""
    texts = load_holdout("tests/data/*.yml").texts
    assert len(texts) > 500
    for path in sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")):
        texts.extend(text for _intent, text in nlu_examples(path))
    changed = {text: mask(text) for text in texts if mask(text) != text}
    for text, masked in changed.items():
        assert any(p in masked for p in (PHONE, ID_CARD, BANK_CARD, ROOM)), text
    assert len(changed) <= len(texts) // 20, changed


@pytest.fixture
def restore_record_factory():
    original = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(original)


def test_logs_are_masked(caplog: pytest.LogCaptureFixture, restore_record_factory) -> None:
    masking.install_log_masking()
    masking.install_log_masking()  # idempotent
    logger = logging.getLogger("tests.privacy")
    with caplog.at_level(logging.INFO):
        logger.info("resident %s wrote %r", "oABC", "电话13812345678 住2单元501")
        logger.info("no personal data: %d tickets", 3)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"resident oABC wrote '电话{PHONE} 住2单元{ROOM}'",
        "no personal data: 3 tickets",
    ]
