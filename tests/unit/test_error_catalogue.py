"""The error catalogue is documented: every code appears in docs/errors.md with its status."""

from __future__ import annotations

from pathlib import Path

from stratus_contracts.errors import CATALOGUE

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_code_is_documented_with_its_status() -> None:
    text = DOC.read_text()
    for code, spec in CATALOGUE.items():
        assert f"| `{code}` | {spec.status} |" in text, code
