"""Envelope encryption: data keys wrapped by master keys, values sealed per variable, fingerprints
keyed per environment, master keys parsed strictly."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from stratus_contracts import masterkey
from stratus_contracts.errors import DomainError
from stratus_projects.environments import crypto

ENV = uuid.uuid4()


def test_a_wrapped_data_key_unwraps_with_its_master_key_only() -> None:
    old, new = os.urandom(32), os.urandom(32)
    dek_id, dek = uuid.uuid4(), crypto.new_data_key()
    kek, wrapped = crypto.Keyring(current=old).wrap(dek_id, dek)
    assert kek == masterkey.key_id(old) and dek not in wrapped
    assert crypto.Keyring(current=new, previous=(old,)).unwrap(dek_id, kek, wrapped) == dek
    with pytest.raises(DomainError) as missing:
        crypto.Keyring(current=new).unwrap(dek_id, kek, wrapped)
    assert missing.value.reply.code == "encryption_unavailable"
    # Bound to its data key's id: a wrapped key copied to another data key does not unwrap.
    with pytest.raises(DomainError):
        crypto.Keyring(current=old).unwrap(uuid.uuid4(), kek, wrapped)


def test_a_keyring_without_a_master_key_cannot_wrap() -> None:
    with pytest.raises(DomainError) as info:
        crypto.Keyring(current=None).wrap(uuid.uuid4(), crypto.new_data_key())
    assert info.value.reply.code == "encryption_unavailable"
    assert "STRATUS_MASTER_KEY" in info.value.reply.message


def test_values_are_sealed_per_variable() -> None:
    key = crypto.DataKey(ENV, crypto.new_data_key())
    sealed = key.seal("DB_PASSWORD", "hunter2")
    assert b"hunter2" not in sealed
    assert key.open("DB_PASSWORD", sealed) == "hunter2"
    assert key.seal("DB_PASSWORD", "hunter2") != sealed  # random nonce
    with pytest.raises(DomainError):
        key.open("OTHER", sealed)  # moved to another variable: refused
    with pytest.raises(DomainError):
        crypto.DataKey(uuid.uuid4(), crypto.new_data_key()).open("DB_PASSWORD", sealed)


def test_fingerprints_are_keyed_per_environment() -> None:
    one = crypto.DataKey(ENV, crypto.new_data_key())
    other = crypto.DataKey(ENV, crypto.new_data_key())
    assert one.fingerprint("1234") == one.fingerprint("1234") != one.fingerprint("1235")
    assert one.fingerprint("1234") != other.fingerprint("1234")  # not an unkeyed hash
    assert len(one.fingerprint("x")) == 32


def test_master_keys_are_32_bytes_of_base64() -> None:
    raw = os.urandom(32)
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        assert masterkey.parse(text) == raw
    for bad in ("", "not base64!", base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(masterkey.MasterKeyError):
            masterkey.parse(bad)
    assert len(masterkey.parse(masterkey.generate())) == 32


def test_the_keyring_comes_from_the_environment() -> None:
    old, new = masterkey.generate(), masterkey.generate()
    ring = crypto.Keyring.from_env({"STRATUS_MASTER_KEY": new, "STRATUS_MASTER_KEY_PREVIOUS": f"{old}, "})
    assert ring.current_id == masterkey.key_id(masterkey.parse(new))
    assert ring.holds(masterkey.key_id(masterkey.parse(old)))
    assert crypto.Keyring.from_env({}).current is None
    with pytest.raises(masterkey.MasterKeyError):
        crypto.Keyring.from_env({"STRATUS_MASTER_KEY_PREVIOUS": old})
    with pytest.raises(masterkey.MasterKeyError):
        crypto.Keyring.from_env({"STRATUS_MASTER_KEY": "short"})
