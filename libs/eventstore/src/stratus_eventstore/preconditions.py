"""If-Match, decided: the one rule every service's decisions apply to a client's expected version."""

from __future__ import annotations

from stratus_contracts.errors import DomainError


def require_version(version: int, expected: int | None, what: str) -> None:
    """412 unless `expected` (the client's If-Match) is None or still the current version. Checked
    on the state a decision is made from, so of two writers holding one ETag only one can win:
    the other's commit conflicts, and on fresh state its version no longer matches. Version 0,
    which nothing has, is what the gateway sends for tags that cannot match (a weak `W/"3"`)."""
    if expected is not None and expected != version:
        if expected <= 0:
            raise DomainError(
                "precondition_failed",
                f'{what} is at version "{version}", which no tag in If-Match names (it compares '
                "strongly: a weak tag never matches); read it again and retry.",
            )
        raise DomainError(
            "precondition_failed",
            f'{what} is at version "{version}", not "{expected}" (If-Match); read it again and retry.',
        )
