"""The error catalogue is documented: docs/errors.md is generated from it and up to date."""

from __future__ import annotations

from pathlib import Path

from stratus_contracts.errors import CATALOGUE, markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_docs_errors_md_is_generated_from_the_catalogue() -> None:
    assert DOC.read_text() == markdown(), "run: uv run python -m stratus_contracts.errors > docs/errors.md"
    for code, spec in CATALOGUE.items():
        assert f"| `{code}` | {spec.status} |" in DOC.read_text()
