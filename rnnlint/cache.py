"""The results cache: ``check`` findings per file, reused while nothing they depend on changed.

A warm ``rnnlint check`` of an unchanged tree should cost little more than
reading and hashing the files. A cached result is reused only when all of these
are what they were when it was computed:

* the file's bytes (content hash) and its location (imports resolve from it);
* the settings: rnnlint's version, the engine's and the rule packs' source
  files (editing a rule invalidates), the rules enabled for the file, their
  options, the project root and ``recurrent-classes``;
* every project file the analysis consulted through the project index
  (:meth:`rnnlint.index.ProjectIndex.recording`): a training script is
  recurrent training because ``models/seq2seq.py`` builds an LSTM, so editing
  that model file invalidates the script's entry. Import candidates that did
  not exist are recorded too: creating one changes what an import resolves to.

One entry per (file, settings) lives in ``<cache dir>/check-<version>/``: a JSON
document with the content hash, the dependencies and the findings as
:meth:`Diagnostic.to_json` writes them, so cached findings print exactly as
fresh ones. The display path is not stored (it depends on the working
directory). Entries are written to a temporary file and renamed into place,
so two concurrent runs never see half an entry; an unreadable or corrupt entry
is a miss. ``fix`` never reads this cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from functools import cached_property
from pathlib import Path

from libcst import _version as libcst_version

from rnnlint import __version__
from rnnlint.config import Config
from rnnlint.diagnostics import Diagnostic
from rnnlint.index import EXISTS
from rnnlint.registry import builtin_pack
from rnnlint.rule import Rule
from rnnlint.source import digest_bytes

_FORMAT = 1  # bump when the entry layout changes


def _sources_digest(folders: list[Path]) -> str:
    """One hash over the source files that decide what a rule reports."""
    h = hashlib.blake2b(digest_size=16)
    for folder in folders:
        for file in sorted(folder.glob("*")):
            if file.suffix in (".py", ".json") and file.is_file():
                h.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()


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
        engine = Path(__file__).resolve().parent
        folders = [engine, engine / "data", builtin_pack(), *(Path(f) for f in self.config.rule_folders)]
        return {
            "version": __version__,
            "python": list(sys.version_info[:2]),
            "libcst": getattr(libcst_version, "__version__", ""),  # the parser decides what parses
            "sources": _sources_digest(folders),
            "root": str(self.config.root),
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
        try:
            data = json.loads(self.entry(path, rules).read_bytes())
            if data["digest"] != digest or not all(self._unchanged(Path(p), d) for p, d in data["deps"].items()):
                return None
            return [Diagnostic.from_json(d, path=display) for d in data["diagnostics"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
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
        file = self.entry(path, rules)
        tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp")
        try:
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                marker = self.root / ".gitignore"
                if not marker.exists():
                    marker.write_text("# created by rnnlint: safe to delete\n*\n", "utf-8")
            tmp.write_text(json.dumps(data), "utf-8")
            os.replace(tmp, file)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
