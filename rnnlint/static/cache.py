"""The results cache: ``check`` findings per file, reused while nothing they depend on changed.

A warm ``rnnlint check`` of an unchanged tree should cost little more than
reading and hashing the files. A cached result is reused only when all of these
are what they were when it was computed:

* the file's bytes (content hash) and its location (imports resolve from it);
* the settings: rnnlint's version, the engine's and the rule packs' source
  files (editing a rule invalidates), the rules enabled for the file, their
  options, the project root and ``recurrent-classes``;
* every project file the analysis consulted through the project index
  (:meth:`rnnlint.static.index.ProjectIndex.recording`): a training script is
  recurrent training because ``models/seq2seq.py`` builds an LSTM, so editing
  that model file invalidates the script's entry. Import candidates that did
  not exist are recorded too: creating one changes what an import resolves to.

One entry per (file, settings) lives in ``<cache dir>/check-<version>/``: a JSON
document with the content hash, the dependencies and the findings as
:meth:`Diagnostic.to_json` writes them, so cached findings print exactly as
fresh ones. The display path is not stored (it depends on the working
directory). Entries are written to a temporary file and renamed into place,
so two concurrent runs never see half an entry.

The cache usually lives inside the checked repository, so an entry is trusted
only when it carries a valid seal (:mod:`rnnlint.seal`: an HMAC with a key kept
in the user's own cache folder, over the entry's name and bytes) and every
field has the type it should: a tampered, foreign, corrupt or hostile entry
(``"diagnostics": []`` added by hand, deep nesting, a string where a line
number belongs) is a miss, never a crash and never a hidden finding. ``fix``
never reads this cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from functools import cached_property
from pathlib import Path

from rnnlint import __version__
from rnnlint import seal
from rnnlint.config import Config
from rnnlint.diagnostics import Diagnostic
from rnnlint.static.registry import builtin_pack
from rnnlint.rule import Rule
from rnnlint.source import EXISTS, digest_bytes

_FORMAT = 1  # bump when the entry layout changes


def _sources_digest(folders: list[Path]) -> str:
    """One hash over the source files that decide what a rule reports."""
    h = hashlib.blake2b(digest_size=16)
    for folder in folders:
        for file in sorted(folder.glob("*")):
            if file.suffix in (".py", ".json") and file.is_file():
                h.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()


def _libcst_version() -> str:
    """libcst's version, read from its ``_version.py`` without importing libcst (a warm run never parses)."""
    import importlib.util

    spec = importlib.util.find_spec("libcst")
    if spec is None or not spec.submodule_search_locations:
        return ""
    try:
        return Path(next(iter(spec.submodule_search_locations)), "_version.py").read_text(encoding="utf-8")
    except OSError:
        return ""


class ResultCache:
    def __init__(self, directory: Path, config: Config) -> None:
        self.root = directory
        self.directory = directory / f"check-{__version__}-{_FORMAT}"
        self.config = config
        self._settings: dict[tuple[str, ...], str] = {}
        self._stat_digests: dict[Path, tuple[tuple, str | None]] = {}

    # -- keys --------------------------------------------------------------

    @cached_property
    def _base(self) -> dict:
        """The settings shared by every file (computed on first use: ``fix`` never needs them)."""
        engine = Path(__file__).resolve().parent.parent  # the package: its own modules, the stage, the flow model
        folders = [engine, engine / "static", engine / "flow", engine / "data", builtin_pack(),
                   *(Path(f) for f in self.config.rule_folders)]
        return {
            "version": __version__,
            "python": list(sys.version_info[:2]),
            "libcst": _libcst_version(),  # the parser decides what parses
            "sources": _sources_digest(folders),
            "root": str(self.config.root),
            # a message names other files from the working folder, as locations are written (display_path)
            "cwd": os.path.realpath(os.getcwd()),
            "recurrent-classes": list(self.config.recurrent_classes),
        }

    def settings(self, rules: list[type[Rule]]) -> str:
        """Hash of everything besides the files that decides the findings of ``rules``."""
        codes = tuple(rule.code for rule in rules)
        if codes not in self._settings:
            document = dict(self._base, rules={rule.code: self.config.options_for(rule) for rule in rules})
            text = json.dumps(document, sort_keys=True, default=repr)
            self._settings[codes] = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return self._settings[codes]

    def entry(self, path: Path, rules: list[type[Rule]]) -> Path:
        key = f"{self.settings(rules)}\0{path.resolve()}"
        return self.directory / f"{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.json"

    # -- reading -----------------------------------------------------------

    def get(self, path: Path, digest: str, rules: list[type[Rule]], display: str) -> list[Diagnostic] | None:
        """The cached findings for ``path`` (shown as ``display``), or None on a miss."""
        file = self.entry(path, rules)
        try:
            data = seal.read_json(file)  # None: no entry, or not sealed with this user's key
            if not _valid_entry(data) or data["digest"] != digest:
                return None
            if not all(self._unchanged(Path(p), d) for p, d in data["deps"].items()):
                return None
            return [Diagnostic.from_json(d, path=display) for d in data["diagnostics"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None  # no entry, or a corrupt one: analyse again

    def _unchanged(self, path: Path, recorded: str | None) -> bool:
        current = self._current(path)
        if recorded == EXISTS:
            return current is not None
        return current == recorded

    def _current(self, path: Path) -> str | None:
        """Content hash of ``path`` now (None when it is not a readable file), memoised by stat."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        known = self._stat_digests.get(path)
        if known is not None and known[0] == signature:
            return known[1]
        try:
            digest: str | None = digest_bytes(path.read_bytes())
        except OSError:
            digest = None
        self._stat_digests[path] = (signature, digest)
        return digest

    # -- the graph stage's note: how many models a file holds ------------------

    @cached_property
    def _models_key(self) -> str:
        """What besides the files decides :func:`rnnlint.graph.count.count_models`: the engine (the graph
        stage's finder with it) and the configured recurrent classes."""
        engine = Path(__file__).resolve().parent.parent
        document = dict(self._base, graph=_sources_digest([engine / "graph"]))
        return hashlib.blake2b(json.dumps(document, sort_keys=True).encode(), digest_size=16).hexdigest()

    def _models_entry(self, path: Path) -> Path:
        key = f"models\0{self._models_key}\0{path.resolve()}"
        return self.directory / f"{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.json"

    def models(self, path: Path, digest: str) -> int | None:
        """The models ``path`` holds as counted before, while it and every file the count read are unchanged."""
        try:
            data = seal.read_json(self._models_entry(path))
            if not _valid_models(data) or data["digest"] != digest:
                return None
            if not all(self._unchanged(Path(p), d) for p, d in data["deps"].items()):
                return None
            return data["models"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None

    def put_models(self, path: Path, digest: str, deps: dict[Path, str | None], count: int) -> None:
        own = path.resolve()
        data = {"digest": digest, "deps": {str(p): d for p, d in sorted(deps.items()) if p != own}, "models": count}
        seal.write_json(self.root, self._models_entry(path), data)

    # -- writing -----------------------------------------------------------

    def put(
        self,
        path: Path,
        digest: str,
        rules: list[type[Rule]],
        deps: dict[Path, str | None],
        diagnostics: list[Diagnostic],
    ) -> None:
        """Store the findings of one analysis; a cache that cannot be written is skipped silently."""
        own = path.resolve()
        data = {
            "digest": digest,
            "deps": {str(p): d for p, d in sorted(deps.items()) if p != own},
            "diagnostics": [d.to_json() for d in diagnostics],
        }
        # a cache that cannot be written, or no key to seal with: nothing is stored, silently
        seal.write_json(self.root, self.entry(path, rules), data)


# -- validation: every field of an entry has the type it must have ----------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_int(value) -> bool:
    return value is None or _is_int(value)


def _valid_position(value) -> bool:
    return isinstance(value, dict) and _is_int(value.get("line")) and _is_int(value.get("column"))


def _valid_fix(fix) -> bool:
    if fix is None:
        return True
    return (isinstance(fix, dict) and isinstance(fix.get("message"), str) and isinstance(fix.get("applicability"), str)
            and isinstance(fix.get("edits"), list)
            and all(isinstance(e, dict) and _valid_position(e.get("start")) and _valid_position(e.get("end"))
                    and isinstance(e.get("content"), str) and _optional_int(e.get("cell")) for e in fix["edits"]))


def _valid_diagnostic(item) -> bool:
    return (isinstance(item, dict)
            and all(isinstance(item.get(k), str) for k in ("code", "name", "severity", "path", "message"))
            and all(_is_int(item.get(k)) for k in ("line", "column", "end_line", "end_column"))
            and _optional_int(item.get("cell")) and _optional_int(item.get("cell_line"))
            and _valid_fix(item.get("fix")))


def _valid_entry(data) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("digest"), str) and _valid_deps(data.get("deps"))
            and isinstance(data.get("diagnostics"), list)
            and all(_valid_diagnostic(d) for d in data["diagnostics"]))


def _valid_models(data) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("digest"), str) and _valid_deps(data.get("deps"))
            and _is_int(data.get("models")))


def _valid_deps(deps) -> bool:
    return isinstance(deps, dict) and all(isinstance(p, str) and (d is None or isinstance(d, str))
                                          for p, d in deps.items())
