"""Signatures and WXBizMsgCrypt AES against WeChat's published vectors."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.wechat_crypto import (
    BadAESKey,
    BadSignature,
    DecryptError,
    MalformedMessage,
    WXBizMsgCrypt,
    compute_signature,
    decode_aes_key,
    pkcs7_pad,
    pkcs7_unpad,
    signature_matches,
    verify_signature,
)

# WeChat's WXBizMsgCrypt sample.
SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_APPID = "wxb11529c136998cb6"
SAMPLE_RANDOM = b"aaaabbbbccccdddd"
SAMPLE_MESSAGE = "我是中文abcd123"
SAMPLE_ENCRYPT = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)


def crypto(appid: str = SAMPLE_APPID, **kwargs: object) -> WXBizMsgCrypt:
    return WXBizMsgCrypt("token", SAMPLE_KEY, appid, **kwargs)  # type: ignore[arg-type]


def test_published_signature_example() -> None:
    assert (
        compute_signature("AAAAA", "1714036504", "1514711492")
        == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    )


def test_signature_is_order_independent_sorted_sha1() -> None:
    import hashlib

    expected = hashlib.sha1("".join(sorted(["tok", "123", "456", "ENC"])).encode()).hexdigest()
    assert compute_signature("tok", "123", "456", "ENC") == expected


@pytest.mark.parametrize(
    ("signature", "timestamp", "nonce"),
    [
        ("f464b24fc39322e44b38aa78f5edd27bd1441697", "1714036504", "1514711492"),
        ("f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036505", "1514711492"),
        (None, "1714036504", "1514711492"),
        ("", "1714036504", "1514711492"),
        ("f464b24fc39322e44b38aa78f5edd27bd1441696", None, "1514711492"),
        ("f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", None),
        ("签名不是十六进制", "1714036504", "1514711492"),  # non-ASCII must not crash
    ],
)
def test_signature_mismatch(
    signature: str | None, timestamp: str | None, nonce: str | None
) -> None:
    assert not signature_matches(signature, "AAAAA", timestamp, nonce)
    with pytest.raises(BadSignature):
        verify_signature(signature, "AAAAA", timestamp, nonce)


def test_signature_match_and_empty_token_never_matches() -> None:
    assert signature_matches(
        "f464b24fc39322e44b38aa78f5edd27bd1441696", "AAAAA", "1714036504", "1514711492"
    )
    assert not signature_matches(compute_signature("", "1", "2"), "", "1", "2")


def test_sample_vector_encrypt() -> None:
    assert crypto().encrypt(SAMPLE_MESSAGE, random_prefix=SAMPLE_RANDOM) == SAMPLE_ENCRYPT


def test_sample_vector_decrypt() -> None:
    assert crypto().decrypt(SAMPLE_ENCRYPT).decode("utf-8") == SAMPLE_MESSAGE


def test_aes_key_decoding() -> None:
    assert len(decode_aes_key(SAMPLE_KEY)) == 32
    for bad in ["short", SAMPLE_KEY + "A", "!" * 43]:
        with pytest.raises(BadAESKey):
            decode_aes_key(bad)


def test_padding_is_32_byte_blocks() -> None:
    assert len(pkcs7_pad(b"")) == 32
    assert pkcs7_pad(b"x" * 31)[-1] == 1
    assert len(pkcs7_pad(b"x" * 32)) == 64
    for bad in [b"", b"abc\x00", b"x" * 31 + b"\x21", b"x" * 30 + b"\x01\x02"]:
        with pytest.raises(DecryptError):
            pkcs7_unpad(bad)


def test_round_trip_uses_fresh_randomness() -> None:
    c = crypto()
    first, second = c.encrypt("同一条消息"), c.encrypt("同一条消息")
    assert first != second
    assert c.decrypt(first) == c.decrypt(second) == "同一条消息".encode()


def test_other_appid_is_rejected() -> None:
    encrypted = crypto(appid="wxotherapp0000000").encrypt("hello")
    with pytest.raises(DecryptError, match="appid"):
        crypto().decrypt(encrypted)


@pytest.mark.parametrize("position", [0, 20, 40, -1])
def test_tampered_ciphertext_is_rejected(position: int) -> None:
    raw = bytearray(base64.b64decode(crypto().encrypt("门口的路灯坏了")))
    raw[position] ^= 0x01
    with pytest.raises(DecryptError):
        crypto().decrypt(base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize("bad", ["", "not base64!!", "YWJj", base64.b64encode(b"x" * 17).decode()])
def test_garbage_is_a_decrypt_error(bad: str) -> None:
    with pytest.raises(DecryptError):
        crypto().decrypt(bad)


def test_decrypt_error_is_a_malformed_message() -> None:
    # The channel maps MalformedMessage to HTTP 400; undecryptable bodies belong there.
    assert issubclass(DecryptError, MalformedMessage)


def test_previous_key_still_decrypts_after_rotation() -> None:
    new_key = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
    old = WXBizMsgCrypt("token", SAMPLE_KEY, SAMPLE_APPID)
    rotated = WXBizMsgCrypt("token", new_key, SAMPLE_APPID, previous_aes_keys=[SAMPLE_KEY])
    assert rotated.decrypt(old.encrypt("旧密钥")) == "旧密钥".encode()
    # Replies use the new key only.
    with pytest.raises(DecryptError):
        old.decrypt(rotated.encrypt("新密钥"))


def test_verify_and_decrypt_checks_msg_signature() -> None:
    c = crypto()
    encrypt = c.encrypt("<xml/>")
    signature = c.sign("1409304348", "xxxxxx", encrypt)
    assert c.verify_and_decrypt(signature, "1409304348", "xxxxxx", encrypt) == b"<xml/>"
    with pytest.raises(BadSignature):
        c.verify_and_decrypt(signature, "1409304349", "xxxxxx", encrypt)
    with pytest.raises(BadSignature):
        c.verify_and_decrypt(None, "1409304348", "xxxxxx", encrypt)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_arbitrary_unicode(message: str) -> None:
    c = crypto()
    assert c.decrypt(c.encrypt(message)).decode("utf-8") == message


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: base64.b64encode(b).decode())))
def test_decrypting_arbitrary_input_raises_only_decrypt_error(value: str) -> None:
    try:
        crypto().decrypt(value)
    except DecryptError:
        pass
