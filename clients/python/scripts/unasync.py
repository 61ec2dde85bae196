"""Write the sync client from the async one: `_async_*.py` → `_sync_*.py`, `await` taken out.

    python clients/python/scripts/unasync.py          # rewrite the sync modules
    python clients/python/scripts/unasync.py --check  # exit 1 if they are out of date

The two clients have one implementation: the async modules are the source, and this script makes
the sync ones by token replacement (the same technique httpx and others use), then formats them
as the repository does. `tests/sdk/test_surface.py` checks that the committed files match.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import PACKAGE, ruff_fix_imports, ruff_format

FILES = {
    "_async_client.py": (
        "_sync_client.py",
        '"""The sync client: transport, retries, auto-paginating lists and resumable event streams.\n\n'
        "Generated from `_async_client.py` by `clients/python/scripts/unasync.py`: edit that file,\n"
        'then run the script.\n"""',
    ),
    "_async_resources.py": (
        "_sync_resources.py",
        '"""The API\'s resources as methods of the sync client: one method per operation.\n\n'
        "Generated from `_async_resources.py` by `clients/python/scripts/unasync.py`: edit that file\n"
        '(its docstring explains the methods), then run the script.\n"""',
    ),
}

# In order; each pattern is a regular expression.
REPLACEMENTS = [
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_lines\b", "iter_lines"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncIterable\b", "Iterable"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\basync_sleep\b", "sync_sleep"),
    (r"\b_async_(client|resources)\b", r"_sync_\1"),
    (r"\b_AsyncStream\b", "_Stream"),
    (r"\bAsync([A-Z]\w*)", r"\1"),  # AsyncClient → Client (httpx's too), AsyncProjects → Projects
]

_DOCSTRING = re.compile(r'\A"""(?:.|\n)*?"""')


def transform(source: str, docstring: str) -> str:
    body = _DOCSTRING.sub("", source, count=1)
    for pattern, replacement in REPLACEMENTS:
        body = re.sub(pattern, replacement, body)
    return docstring + body


def render() -> dict[str, str]:
    """The sync modules' text by file name."""
    out = {}
    for source_name, (target_name, docstring) in FILES.items():
        text = transform((PACKAGE / source_name).read_text(), docstring)
        target = PACKAGE / target_name
        out[target_name] = ruff_format(ruff_fix_imports(text, target), target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are not up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        target = PACKAGE / name
        if target.exists() and target.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            target.write_text(text)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
