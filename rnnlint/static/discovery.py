"""Which files a run looks at.

Directories are walked recursively for Python sources; ``exclude`` globs and
``.gitignore`` files prune the walk, as ``git`` would: the patterns are git's
own wildmatch semantics from the `pathspec <https://pypi.org/project/pathspec/>`_
library (anchored and unanchored patterns, ``dir/``, ``**``, ``!`` negation,
escapes, the deepest ``.gitignore`` and the last matching line winning). A file
named explicitly on the command line is always checked, as in Ruff: that is
how pre-commit passes files.

A ``.gitignore`` is read only when it is a regular file (a FIFO would wait
forever). pathspec matches with Python regular expressions, which backtrack: a
line costs time of the order of (name length) ** (its ``*`` runs) times (path
length) ** (its ``**`` runs) on a path that almost matches, so
``*a*a*a*a*a*b`` on a long name, or ``**/a/**/a/**/b`` on a deep tree, would
never finish. A line with more than :data:`MAX_WILDCARDS` runs of ``*``, or
more than :data:`MAX_DOUBLE_STARS` of them ``**``, is not used (and said once);
real ignore files stay far below both (measured worst case within the bounds:
0.05 s per path 1,000 folders deep).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlint.config import Config
from rnnlint.regular import read_regular

if TYPE_CHECKING:
    import pathspec

    from rnnlint.source import RealPaths

SOURCE_SUFFIXES = (".py", ".ipynb")
# a FIFO named train.py would make every stage that reads it wait forever
_NOT_REGULAR = "not a regular file (a pipe, socket or device); skipped"
MAX_WILDCARDS = 3  # runs of "*" in one .gitignore line ...
MAX_DOUBLE_STARS = 2  # ... and of them "**", which range over the whole path rather than one name
_STARS = re.compile(r"\*+")


class GitIgnore:
    """The ``.gitignore`` patterns in effect while walking a tree."""

    def __init__(self) -> None:
        self._specs: dict[Path, "pathspec.GitIgnoreSpec"] = {}
        #: ``(folder + "/", spec, any line)`` of each spec, shallowest first. ``any line`` is one regular
        #: expression of all its patterns: a path none of them matches (most of a tree) gets no verdict from
        #: that file, answered in one C-level match instead of one per line
        self._ordered: list[tuple[str, "pathspec.GitIgnoreSpec", re.Pattern]] = []
        self.problems: list[str] = []

    def load(self, directory: Path) -> None:
        file = directory / ".gitignore"
        try:
            text = read_regular(file, limit=4 * 2**20).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            if os.path.lexists(file):
                self.problems.append(f"{file}: not read: {exc.strerror or exc}")
            return
        import pathspec  # ~12 ms: only runs that walk a tree with a .gitignore pay it

        lines = []
        for number, line in enumerate(text.splitlines(), 1):
            runs = _STARS.findall(line)
            if (len(runs) > MAX_WILDCARDS or sum(len(r) > 1 for r in runs) > MAX_DOUBLE_STARS) \
                    and not line.lstrip().startswith("#"):
                self.problems.append(
                    f"{file}:{number}: too many wildcards in one pattern (at most {MAX_WILDCARDS} `*` runs, "
                    f"{MAX_DOUBLE_STARS} of them `**`): matching it could take hours; rnnlint does not use it"
                )
                continue
            lines.append(line)
        try:
            spec = pathspec.GitIgnoreSpec.from_lines(lines)
        except Exception:  # one malformed line (a lone "!"): keep the others, as git does
            spec = pathspec.GitIgnoreSpec.from_lines([line for line in lines if _valid(line)])
        if spec.patterns:
            self._specs[directory] = spec
            self._ordered.append((directory.as_posix().rstrip("/") + "/", spec, _any_pattern(spec)))
            self._ordered.sort(key=lambda entry: entry[0].count("/"))

    def ignored(self, path: Path, is_dir: bool) -> bool:
        """Is ``path`` (absolute, resolved) ignored? The deepest file with a matching line decides."""
        verdict: bool | None = None
        posix = path.as_posix()
        for prefix, spec, any_line in self._ordered:
            if not posix.startswith(prefix):
                continue
            rel = posix[len(prefix):] + ("/" if is_dir else "")
            if not any_line.match(rel):
                continue
            result = spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)


def _any_pattern(spec: "pathspec.GitIgnoreSpec") -> re.Pattern:
    """One expression that matches where any line of ``spec`` matches (negated lines too: they decide).
    pathspec's own expressions, their named groups made plain so that they can stand side by side."""
    parts = [_NAMED_GROUP.sub("(?:", p.regex.pattern) for p in spec.patterns
             if getattr(p, "regex", None) is not None and p.include is not None]
    return re.compile("|".join(f"(?:{part})" for part in parts) or "(?!)")


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def _valid(line: str) -> bool:
    import pathspec

    try:
        pathspec.GitIgnoreSpec.from_lines([line])
    except Exception:
        return False
    return True


def _git_root(directory: Path) -> Path | None:
    """The work tree that ``directory`` is in: git reads every .gitignore from there down."""
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def discover(paths: list[Path], config: Config, suffixes: tuple[str, ...] = SOURCE_SUFFIXES,
             real_paths: RealPaths | None = None) -> tuple[list[Path], list[str]]:
    """Files to check, and problems met on the way (missing paths, unreadable dirs). ``real_paths`` learns
    each file's resolved path, which the walk works out anyway (the run asks it of every file)."""
    files: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(file: Path, key: Path | None = None) -> None:
        key = key or file.resolve()
        if key not in seen:
            seen.add(key)
            files.append(file)
            if real_paths is not None:
                real_paths.know(file, key)

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

        top_resolved = path.resolve()
        for dirpath, dirnames, filenames in os.walk(path, onerror=onerror):
            directory = Path(dirpath)
            # the walk never enters a linked folder: below the top, a folder's real path is the top's real
            # path and the folder's own (resolving each path anew was most of a large tree's discovery)
            resolved = top_resolved / os.path.relpath(dirpath, path) if directory != path else top_resolved
            if config.respect_gitignore and directory != path and (".gitignore" in filenames or ".gitignore" in dirnames):
                ignore.load(resolved)  # the walk listed the folder: no open() to learn that most have none
            kept = []
            for name in sorted(dirnames):
                sub = directory / name
                if config.is_excluded(sub) or (config.respect_gitignore and ignore.ignored(resolved / name, True)):
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                if not name.endswith(suffixes):
                    continue
                file = directory / name
                try:  # one stat, following links
                    mode = os.lstat(file).st_mode
                    link = stat.S_ISLNK(mode)
                    regular = stat.S_ISREG(os.stat(file).st_mode if link else mode)
                except OSError:  # a dangling link or a loop: nothing to read
                    problems.append(f"{file}: broken symbolic link or symlink loop; skipped")
                    continue
                if not regular:
                    problems.append(f"{file}: {_NOT_REGULAR}")
                    continue
                if config.is_excluded(file):
                    continue
                real = file.resolve() if link else resolved / name
                if config.respect_gitignore and ignore.ignored(real, False):
                    continue
                add(file, real)
        problems.extend(p for p in ignore.problems if p not in problems)
    return files, problems

