"""STRATUS_STREAM_REPLICAS: how many copies JetStream keeps of the streams and buckets we create."""

from __future__ import annotations

import pytest

from stratus_bus.config import stream_replicas


def test_one_copy_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATUS_STREAM_REPLICAS", raising=False)
    assert stream_replicas() == 1
    monkeypatch.setenv("STRATUS_STREAM_REPLICAS", "3")
    assert stream_replicas() == 3


@pytest.mark.parametrize("value", ["0", "6", "three"])
def test_a_count_jetstream_refuses_stops_at_once(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STRATUS_STREAM_REPLICAS", value)
    with pytest.raises(ValueError, match=r"STRATUS_STREAM_REPLICAS|invalid literal"):
        stream_replicas()
