"""Which files a run looks at.

Directories are walked recursively for Python sources; ``exclude`` globs and
``.gitignore`` files prune the walk (as ``git`` would, for the common forms:
anchored and unanchored patterns, ``dir/`` patterns, ``**`` and ``!``
negation). A file named explicitly on the command line is always checked, as in
Ruff: that is how pre-commit passes files.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from rnnlint.config import Config

SOURCE_SUFFIXES = (".py", ".ipynb")
# a FIFO named train.py would make every stage that reads it wait forever
_NOT_REGULAR = "not a regular file (a pipe, socket or device); skipped"


@dataclass(frozen=True)
class _Pattern:
    base: Path
    regex: re.Pattern
    negate: bool
    dir_only: bool


def _compile(line: str, base: Path) -> _Pattern | None:
    line = line.rstrip("\n").rstrip()
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    anchored = "/" in line
    line = line.lstrip("/")
    out = ""
    i = 0
    while i < len(line):
        if line.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif line.startswith("**", i):
            out += ".*"
            i += 2
        elif line[i] == "*":
            out += "[^/]*"
            i += 1
        elif line[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(line[i])
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return _Pattern(base, re.compile(f"^{prefix}{out}$"), negate, dir_only)


class GitIgnore:
    """The ``.gitignore`` patterns in effect while walking a tree."""

    def __init__(self) -> None:
        self._patterns: dict[Path, list[_Pattern]] = {}

    def load(self, directory: Path) -> None:
        file = directory / ".gitignore"
        patterns = []
        try:
            with open(file, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    compiled = _compile(line, directory)
                    if compiled:
                        patterns.append(compiled)
        except OSError:
            pass
        self._patterns[directory] = patterns

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict = False
        for base in reversed(path.parents):
            for pattern in self._patterns.get(base, ()):
                if pattern.dir_only and not is_dir:
                    continue
                rel = path.relative_to(base).as_posix()
                if pattern.regex.match(rel):
                    verdict = not pattern.negate
        return verdict


def _git_root(directory: Path) -> Path | None:
    """The work tree that ``directory`` is in: git reads every .gitignore from there down."""
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def discover(paths: list[Path], config: Config, suffixes: tuple[str, ...] = SOURCE_SUFFIXES) -> tuple[list[Path], list[str]]:
    """Files to check, and problems met on the way (missing paths, unreadable dirs)."""
    files: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(file: Path) -> None:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            files.append(file)

    for path in paths:
        if path.is_file():
            add(path)  # explicit files are always checked
            continue
        if path.exists() and not path.is_dir():
            problems.append(f"{path}: {_NOT_REGULAR}")
            continue
        if not path.exists():
            broken = " (a broken symbolic link or a symlink loop)" if path.is_symlink() else ""
            problems.append(f"{path}: no such file or directory{broken}")
            continue
        ignore = GitIgnore()
        if config.respect_gitignore:
            start = path.resolve()
            top = _git_root(start) or config.root
            for parent in reversed([start, *start.parents]):
                if parent == top or top in parent.parents:
                    ignore.load(parent)

        def onerror(exc: OSError) -> None:
            problems.append(f"{exc.filename}: cannot read directory: {exc.strerror}")

        for dirpath, dirnames, filenames in os.walk(path, onerror=onerror):
            directory = Path(dirpath)
            if config.respect_gitignore and directory != path:
                ignore.load(directory.resolve())
            kept = []
            for name in sorted(dirnames):
                sub = directory / name
                if config.is_excluded(sub) or (config.respect_gitignore and ignore.ignored(sub.resolve(), True)):
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                if not name.endswith(suffixes):
                    continue
                file = directory / name
                try:  # one stat, following links
                    regular = stat.S_ISREG(os.stat(file).st_mode)
                except OSError:  # a dangling link or a loop: nothing to read
                    problems.append(f"{file}: broken symbolic link or symlink loop; skipped")
                    continue
                if not regular:
                    problems.append(f"{file}: {_NOT_REGULAR}")
                    continue
                if config.is_excluded(file):
                    continue
                if config.respect_gitignore and ignore.ignored(file.resolve(), False):
                    continue
                add(file)
    return files, problems

