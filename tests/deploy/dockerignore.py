"""Docker's `.dockerignore` rules (moby/patternmatcher), for the deploy tests: which files of a
directory a `docker build` with it as context would send.

Not gitignore's rules, which differ where it matters here: a pattern is anchored at the context
root (`*.db` is only the root's, `**/*.db` is anywhere), `*` and `?` never cross a `/`, `**`
crosses any number of directories, a pattern that matches a directory excludes everything under
it, and the last matching line wins (`!` re-includes).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path


def read_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, regex) per line, as Docker's ReadAll and patternmatcher compile them."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        line = line.lstrip("!").strip()
        line = posixpath.normpath(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        if "[" in line or "\\" in line:
            raise ValueError(f"character classes and escapes are not modelled here: {raw!r}")
        patterns.append((exclude, _compile(line)))
    return patterns


def _compile(pattern: str) -> re.Pattern[str]:
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 == len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether `path` (relative, with `/`) is left out: the last pattern matching it or one of
    its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for exclude, regex in patterns:
        if any(regex.match(c) for c in candidates):
            result = exclude
    return result


def _reincludes_below(text: str) -> list[str]:
    return [
        line.strip()[1:].strip().lstrip("/") for line in text.splitlines() if line.strip().startswith("!")
    ]


def context_files(root: Path, dockerignore: str) -> Iterator[str]:
    """Every file (and symlink) under `root` that a build with this `.dockerignore` would send."""
    patterns = read_patterns(dockerignore)
    exceptions = _reincludes_below(dockerignore)
    for directory, dirs, files in os.walk(root):
        rel_dir = Path(directory).relative_to(root).as_posix()
        # An excluded directory that no `!` line reaches into is skipped whole, as Docker does.
        dirs[:] = [
            d
            for d in dirs
            if not (
                ignored(rel := d if rel_dir == "." else f"{rel_dir}/{d}", patterns)
                and not any(e.startswith(rel + "/") or "*" in e for e in exceptions)
            )
        ]
        for name in files + [d for d in dirs if (Path(directory) / d).is_symlink()]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not ignored(rel, patterns):
                yield rel
