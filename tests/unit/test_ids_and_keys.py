"""Public ids and API key format: what clients see and what the gateway accepts."""

from __future__ import annotations

import uuid

from stratus_contracts import ids, keys


def test_public_ids_round_trip_and_reject_foreign_kinds() -> None:
    value = uuid.uuid4()
    public = ids.encode_id("prj", value)
    assert public.startswith("prj_") and public.replace("_", "").isalnum()
    assert ids.decode_id("prj", public) == value
    assert ids.decode_id("acct", public) is None
    for bad in ["prj_", "prj_short", "prj_" + "!" * 26, public + "a", "nonsense"]:
        assert ids.decode_id("prj", bad) is None


def test_generated_keys_are_random_well_formed_and_hashed() -> None:
    live, test = keys.generate("live"), keys.generate("test")
    assert keys.mode_of(live) == "live" and keys.mode_of(test) == "test"
    assert len(live) - len("sk_live_") >= 43  # 256 bits, URL-safe base64
    assert keys.generate("live") != live
    assert keys.hash_secret(live) != live and len(keys.hash_secret(live)) == 64
    assert live[-4:] in keys.hint(live) and live[12:-4] not in keys.hint(live)


def test_malformed_keys_are_rejected() -> None:
    for bad in [
        "",
        "sk_live_",
        "sk_live_short",
        "sk_prod_" + "a" * 30,
        "pk_live_" + "a" * 30,
        "sk_live_" + "a" * 23,
        "sk_live_" + "a" * 30 + "!",
        "sk_live_" + "a" * 201,
    ]:
        assert keys.mode_of(bad) is None, bad
    assert keys.mode_of("sk_test_" + "a" * 24) == "test"
