"""Envelope encryption of environment variables (AES-256-GCM, the `cryptography` library).

Each environment has its own random 256-bit data key. Values are sealed with it (AES-GCM, random
96-bit nonce, the environment id and variable key as associated data, so a ciphertext cannot be
moved to another variable); fingerprints are HMAC-SHA256 of the value under a key derived from
it. The data key itself is stored only wrapped (AES-GCM) by a key-encryption key, the master key
from `STRATUS_MASTER_KEY`, and the wrapped key records the master key's id. Master keys named in
`STRATUS_MASTER_KEY_PREVIOUS` (comma-separated) still unwrap, so a rotation re-wraps data keys
while the service keeps serving; nothing ever encrypts under them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stratus_kit.keyring import NONCE_BYTES, Keyring, MasterKeyError, kek_id, unavailable

__all__ = ["DataKey", "Keyring", "MasterKeyError", "kek_id", "new_data_key", "unavailable"]

FINGERPRINT_HEX = 32  # 128 bits of HMAC-SHA256


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class DataKey:
    """An environment's unwrapped data key: seals and opens values, fingerprints them."""

    def __init__(self, env_id: uuid.UUID, key: bytes) -> None:
        self.env_id = env_id
        self._aead = AESGCM(key)
        # A separate key for fingerprints, so the data key serves one purpose.
        self._fingerprint_key = hmac.new(key, b"stratus fingerprint key v1", hashlib.sha256).digest()

    def _aad(self, name: str) -> bytes:
        return b"stratus var v1\x00" + self.env_id.bytes + name.encode("utf-8")

    def seal(self, name: str, value: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, value.encode("utf-8", "surrogatepass"), self._aad(name))

    def open(self, name: str, sealed: bytes) -> str:
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self._aad(name))
        except InvalidTag as exc:
            raise unavailable("A stored value does not decrypt.") from exc
        return plain.decode("utf-8", "surrogatepass")

    def fingerprint(self, value: str) -> str:
        digest = hmac.new(self._fingerprint_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:FINGERPRINT_HEX]
