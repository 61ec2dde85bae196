"""The master keys of a process (`STRATUS_MASTER_KEY`, `STRATUS_MASTER_KEY_PREVIOUS`) and the
wrapping of small secrets under them: envelope encryption's key-encryption half, for every
service that keeps secrets at rest (environment data keys, webhook signing secrets).

`Keyring.wrap(item_id, plaintext)` seals with AES-256-GCM under the current master key, a random
96-bit nonce and the item's id and the master key's id as associated data (a wrapped value
copied to another item does not open); the result records which master key wrapped it. Keys
named in `STRATUS_MASTER_KEY_PREVIOUS` still unwrap, so a rotation re-wraps while the service
keeps serving; nothing is ever wrapped under them.
"""

from __future__ import annotations

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

log = logging.getLogger("stratus.kit.keyring")

NONCE_BYTES = 12
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
                "Secrets cannot be written: the service has no master key (STRATUS_MASTER_KEY)."
            )
        kek = kek_id(self.current)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return kek, nonce + AESGCM(self.current).encrypt(nonce, dek, _dek_aad(dek_id, kek))

    def unwrap(self, dek_id: uuid.UUID, kek: str, wrapped: bytes) -> bytes:
        key = self._by_id.get(kek)
        if key is None:
            log.error("a secret wrapped by a master key this process lacks", extra={"kek_id": kek})
            raise unavailable(
                "Secrets cannot be read: they are wrapped by a master key this service does not hold."
            )
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _dek_aad(dek_id, kek))
        except InvalidTag as exc:
            log.error("a wrapped secret does not unwrap", extra={"kek_id": kek})
            raise unavailable("Secrets cannot be read: a wrapped key does not unwrap.") from exc
