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
import logging
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stratus_contracts import masterkey
from stratus_contracts.errors import DomainError

log = logging.getLogger("stratus.projects.crypto")

NONCE_BYTES = 12
FINGERPRINT_HEX = 32  # 128 bits of HMAC-SHA256
kek_id = masterkey.key_id
MasterKeyError = masterkey.MasterKeyError


def unavailable(message: str) -> DomainError:
    return DomainError("encryption_unavailable", message)


def _dek_aad(dek_id: uuid.UUID, kek: str) -> bytes:
    return b"stratus dek v1\x00" + dek_id.bytes + kek.encode("ascii")


@dataclass(frozen=True)
class Keyring:
    """The master keys this process holds: `current` wraps, every one of them unwraps."""

    current: bytes | None
    previous: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = ([self.current] if self.current else []) + list(self.previous)
        object.__setattr__(self, "_by_id", {kek_id(k): k for k in keys})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Keyring:
        """The keyring from `STRATUS_MASTER_KEY` and `STRATUS_MASTER_KEY_PREVIOUS`; MasterKeyError
        for a malformed key. Without a current key, variables can be neither read nor written."""
        env = os.environ if env is None else env
        current_text = env.get(masterkey.MASTER_KEY_ENV, "").strip()
        current = masterkey.parse(current_text) if current_text else None
        previous = tuple(
            masterkey.parse(part, masterkey.PREVIOUS_KEYS_ENV)
            for part in env.get(masterkey.PREVIOUS_KEYS_ENV, "").split(",")
            if part.strip()
        )
        if current is None and previous:
            raise MasterKeyError(
                f"{masterkey.PREVIOUS_KEYS_ENV} is set but {masterkey.MASTER_KEY_ENV} is not"
            )
        return cls(current=current, previous=previous)

    @property
    def current_id(self) -> str | None:
        return kek_id(self.current) if self.current else None

    def holds(self, kek: str) -> bool:
        return kek in self._by_id

    def wrap(self, dek_id: uuid.UUID, dek: bytes) -> tuple[str, bytes]:
        """(master key id, wrapped data key) under the current master key."""
        if self.current is None:
            raise unavailable(
                "Variables cannot be written: the service has no master key (STRATUS_MASTER_KEY)."
            )
        kek = kek_id(self.current)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return kek, nonce + AESGCM(self.current).encrypt(nonce, dek, _dek_aad(dek_id, kek))

    def unwrap(self, dek_id: uuid.UUID, kek: str, wrapped: bytes) -> bytes:
        key = self._by_id.get(kek)
        if key is None:
            log.error("data key wrapped by a master key this process lacks", extra={"kek_id": kek})
            raise unavailable(
                "Variables cannot be read: their data key is wrapped by a master key this service "
                "does not hold."
            )
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _dek_aad(dek_id, kek))
        except InvalidTag as exc:
            log.error("data key does not unwrap", extra={"kek_id": kek})
            raise unavailable("Variables cannot be read: their data key does not unwrap.") from exc


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
