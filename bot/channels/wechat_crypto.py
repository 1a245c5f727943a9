"""WeChat server-message signatures and the WXBizMsgCrypt AES scheme ("safe mode").

Byte-compatible with WeChat's published WXBizMsgCrypt samples:

* signature = sha1(''.join(sorted([token, timestamp, nonce(, encrypt)])))
* key = base64decode(EncodingAESKey + "="), AES-256-CBC, IV = key[:16]
* plaintext = 16 random bytes + 4-byte big-endian length + message + appid,
  PKCS#7-padded to 32-byte blocks (not AES's 16: that is WeChat's choice).

No Rasa imports: the sender CLI and the tests use this module on its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Iterable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE = 32
RANDOM_PREFIX_LEN = 16
AES_KEY_LEN = 32
ENCODING_AES_KEY_LEN = 43


class WeChatProtocolError(Exception):
    """Base class of the typed errors of the WeChat channel (crypto and protocol)."""


class BadSignature(WeChatProtocolError):
    """A signature or msg_signature does not match (HTTP 403)."""


class MalformedMessage(WeChatProtocolError):
    """The body is not a WeChat message we can read (HTTP 400)."""


class DecryptError(MalformedMessage):
    """The Encrypt payload is not valid base64/AES/padding or carries another appid."""


class PayloadTooLarge(WeChatProtocolError):
    """The body is larger than any WeChat message (HTTP 413)."""


class BadAESKey(ValueError):
    """The EncodingAESKey is not 43 base64 characters (a configuration error)."""


def compute_signature(token: str, timestamp: str, nonce: str, encrypt: str | None = None) -> str:
    """sha1 hex of the sorted, concatenated parts (msg_signature when `encrypt` is given)."""
    parts = [token, timestamp, nonce]
    if encrypt is not None:
        parts.append(encrypt)
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signature_matches(
    signature: str | None,
    token: str,
    timestamp: str | None,
    nonce: str | None,
    encrypt: str | None = None,
) -> bool:
    """Constant-time check of a signature; missing parts never match."""
    if not signature or timestamp is None or nonce is None or not token:
        return False
    expected = compute_signature(token, timestamp, nonce, encrypt)
    # compare_digest on bytes: str arguments must be ASCII, and a hostile query may not be.
    return hmac.compare_digest(expected.encode("utf-8"), signature.lower().encode("utf-8"))


def verify_signature(
    signature: str | None,
    token: str,
    timestamp: str | None,
    nonce: str | None,
    encrypt: str | None = None,
) -> None:
    """Raise BadSignature unless the signature matches."""
    if not signature_matches(signature, token, timestamp, nonce, encrypt):
        raise BadSignature("signature does not match")


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """EncodingAESKey (43 chars) -> the 32-byte AES key."""
    if len(encoding_aes_key) != ENCODING_AES_KEY_LEN:
        raise BadAESKey("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadAESKey("EncodingAESKey is not base64") from exc
    if len(key) != AES_KEY_LEN:
        raise BadAESKey("EncodingAESKey does not decode to 32 bytes")
    return key


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    amount = block_size - (len(data) % block_size)
    return data + bytes([amount]) * amount


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    if not data:
        raise DecryptError("empty plaintext")
    amount = data[-1]
    if amount < 1 or amount > block_size or amount > len(data):
        raise DecryptError("bad padding")
    if data[-amount:] != bytes([amount]) * amount:
        raise DecryptError("bad padding")
    return data[:-amount]


class WXBizMsgCrypt:
    """Encrypt/decrypt WeChat safe-mode payloads for one account.

    `previous_aes_keys`: after a key rotation WeChat may still send messages under the
    old key for a while; decryption tries them after the current key. Replies are
    always encrypted with the current key.
    """

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        appid: str,
        previous_aes_keys: Iterable[str] = (),
    ) -> None:
        self.token = token
        self.appid = appid
        self._key = decode_aes_key(encoding_aes_key)
        self._decrypt_keys = [self._key] + [decode_aes_key(k) for k in previous_aes_keys if k]

    # -- raw payload ------------------------------------------------------------------

    def encrypt(self, message: str | bytes, random_prefix: bytes | None = None) -> str:
        """Message -> base64 Encrypt value. `random_prefix` is for known-answer tests."""
        body = message.encode("utf-8") if isinstance(message, str) else message
        prefix = os.urandom(RANDOM_PREFIX_LEN) if random_prefix is None else random_prefix
        if len(prefix) != RANDOM_PREFIX_LEN:
            raise ValueError("random prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(body)) + body + self.appid.encode("utf-8")
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        cipher = encryptor.update(pkcs7_pad(plain)) + encryptor.finalize()
        return base64.b64encode(cipher).decode("ascii")

    def decrypt(self, encrypt: str) -> bytes:
        """base64 Encrypt value -> message bytes; DecryptError on anything wrong."""
        try:
            cipher = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecryptError("Encrypt is not base64") from exc
        if not cipher or len(cipher) % 16:
            raise DecryptError("ciphertext length is not a multiple of the AES block")
        last_error: DecryptError | None = None
        for key in self._decrypt_keys:
            try:
                return self._decrypt_with(key, cipher)
            except DecryptError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def _decrypt_with(self, key: bytes, cipher: bytes) -> bytes:
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = pkcs7_unpad(decryptor.update(cipher) + decryptor.finalize())
        if len(plain) < RANDOM_PREFIX_LEN + 4:
            raise DecryptError("plaintext too short")
        (length,) = struct.unpack(">I", plain[RANDOM_PREFIX_LEN : RANDOM_PREFIX_LEN + 4])
        start = RANDOM_PREFIX_LEN + 4
        if start + length > len(plain):
            raise DecryptError("length field exceeds plaintext")
        message = plain[start : start + length]
        appid = plain[start + length :]
        # Not a secret, but a message for another account must not be processed here.
        if not hmac.compare_digest(appid, self.appid.encode("utf-8")):
            raise DecryptError("appid does not match")
        return message

    # -- with signatures ----------------------------------------------------------------

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return compute_signature(self.token, timestamp, nonce, encrypt)

    def verify_and_decrypt(
        self, msg_signature: str | None, timestamp: str | None, nonce: str | None, encrypt: str
    ) -> bytes:
        """Check msg_signature over the Encrypt value, then decrypt (BadSignature first)."""
        verify_signature(msg_signature, self.token, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)
