"""``[tool.rnnlint]`` in ``pyproject.toml``, validated, with CLI overrides.

Example::

    [tool.rnnlint]
    select = ["RNN"]                  # codes or prefixes; default: every default-on rule
    extend-select = ["RNN021"]        # add to the selection (off-by-default rules by full code)
    ignore = ["RNN020"]
    exclude = ["data/**"]             # replaces the default excludes; see extend-exclude
    graph = true                      # opt in: the graph stage runs project code
    recurrent-classes = ["mylib.layers.IndRNN"]
    rule-folders = ["tools/rnnlint_rules"]   # opt in: imports these files (relative to this file)

    [tool.rnnlint.per-file-ignores]
    "tests/**" = ["RNN001"]

    [tool.rnnlint.missing-grad-clip]  # options of one rule, by rule name
    max-norm = 0.5

Unknown keys, values of the wrong type and values outside what they mean
(a clip norm of ``nan``, a timeout of 0) are errors that name the key, the
value and what is allowed: a typo in a linter's config must never silently
switch a check off nor make a fix write nonsense.

Trust: reading a config never runs anything. ``graph = true`` and
``rule-folders`` are the two settings that make rnnlint run project code; both
are opt-in, and :meth:`Config.without_project_code` (``--no-project-code``)
switches them off whatever the file says. ``[tool.rnnlint.models]`` may only
name modules of the project itself (see :func:`check_model_keys`).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rnnlint.rule import Rule
from rnnlint.regular import read_regular

DEFAULT_EXCLUDE = (
    ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__", "build", "dist",
    "node_modules", "site-packages", ".eggs", "*.egg-info", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".rnnlint_cache", ".ipynb_checkpoints",
)
_LIST_KEYS = ("select", "extend-select", "ignore", "exclude", "extend-exclude", "recurrent-classes", "rule-folders")
_TOP_KEYS = set(_LIST_KEYS) | {"per-file-ignores", "graph", "respect-gitignore", "cache-dir", "models"}


class ConfigError(Exception):
    """A config problem; the message names the file and the key."""


@dataclass(frozen=True)
class Config:
    root: Path
    source: Path | None = None  # the pyproject.toml read, if any
    # where the project's files are walked from: the root, unless no project holds the inputs (no
    # pyproject.toml, no .git above them): then only the folders the user named (see load_config)
    folders: tuple[Path, ...] = ()
    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    graph: bool = False  # opt-in: the graph stage runs project code (see the README, "What runs")
    respect_gitignore: bool = True
    recurrent_classes: tuple[str, ...] = ()
    rule_folders: tuple[str, ...] = ()
    cache_dir: Path | None = None
    models: dict = field(default_factory=dict, hash=False, compare=False)  # "module:Name" -> ModelConfig
    # rule name -> {option: value}, already validated against the rule's options
    rule_options: dict = field(default_factory=dict, hash=False, compare=False)
    _raw_options: dict = field(default_factory=dict, hash=False, compare=False, repr=False)

    # -- selection ---------------------------------------------------------

    def enabled(self, rules: dict[str, type[Rule]], path: Path | None = None) -> list[type[Rule]]:
        """The rules that run on ``path`` (or on every file when path is None)."""
        ignores = list(self.ignore)
        if path is not None:
            rel = self.relative(path)
            for pattern, codes in self.per_file_ignores:
                if _glob_match(rel, pattern):
                    ignores.extend(codes)
        chosen = []
        for code, rule in rules.items():
            if self.select is None:
                on = rule.default_enabled
            else:
                on = any(_selects(s, rule) for s in self.select)
            on = on or any(_selects(s, rule) for s in self.extend_select)
            if on and not any(code.startswith(i) or i == "ALL" for i in ignores):
                chosen.append(rule)
        return chosen

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def is_excluded(self, path: Path) -> bool:
        """Does an exclude pattern match ``path`` (its name, or its path from the root)?

        Only the entry itself is tested: discovery prunes excluded directories as
        it walks, and a tree the user names explicitly (even one inside a
        ``site-packages``) is walked.
        """
        patterns = tuple(self.exclude) + tuple(self.extend_exclude)
        if _names_matcher(patterns).match(os.path.normcase(path.name)):
            return True
        rel = None  # resolved only for a pattern with a folder in it: a large tree's walk asks this per file
        for pattern in patterns:
            if "/" in pattern:
                rel = self.relative(path) if rel is None else rel
                if _glob_match(rel, pattern):
                    return True
        return False

    def options_for(self, rule: type[Rule]) -> dict[str, Any]:
        values = {key: opt.default for key, opt in rule.options.items()}
        values.update(self.rule_options.get(rule.name, {}))
        return values

    def with_rules(self, rules: dict[str, type[Rule]]) -> "Config":
        """Validate rule codes and rule option tables now that rules are known."""
        known = set(rules)
        for key, entries in (("select", self.select or ()), ("extend-select", self.extend_select),
                             ("ignore", self.ignore)):
            for entry in entries:
                if entry != "ALL" and not any(code.startswith(entry) for code in known):
                    raise ConfigError(f"{self._where(key)}: {unknown_code(entry, rules)}")
        for _, codes in self.per_file_ignores:
            for entry in codes:
                if not any(code.startswith(entry) for code in known):
                    raise ConfigError(f"{self._where('per-file-ignores')}: {unknown_code(entry, rules)}")
        by_name = {rule.name: rule for rule in rules.values()}
        by_code = {rule.code: rule for rule in rules.values()}
        validated: dict[str, dict[str, Any]] = {}
        for table, values in self._raw_options.items():
            rule = by_name.get(table) or by_code.get(table)
            if rule is None:
                hint = did_you_mean(table, [*_TOP_KEYS, *by_name])
                raise ConfigError(
                    f"{self._where(table)}: unknown key {table!r} (not a setting nor a rule name){hint}"
                )
            if not isinstance(values, dict):
                raise ConfigError(f"{self._where(table)}: expected a table of options for rule {rule.code}")
            for key, value in values.items():
                option = rule.options.get(key)
                if option is None:
                    choices = ", ".join(rule.options) or "none"
                    raise ConfigError(
                        f"{self._where(table + '.' + key)}: unknown option {key!r} for {rule.code} "
                        f"({rule.name}){did_you_mean(key, rule.options)}; its options are: {choices}"
                    )
                try:
                    validated.setdefault(rule.name, {})[key] = option.check(key, value)
                except ValueError as exc:
                    raise ConfigError(f"{self._where(table + '.' + key)}: {exc}") from None
        return replace(self, rule_options=validated)

    def without_project_code(self) -> "Config":
        """The config with everything that runs project code switched off (``--no-project-code``)."""
        return replace(self, graph=False, rule_folders=())

    def _where(self, key: str) -> str:
        origin = str(self.source) if self.source else "command line"
        return f"{origin}: [tool.rnnlint] {key}"


def unknown_code(entry: str, rules: dict[str, type[Rule]]) -> str:
    """Why ``entry`` selects nothing, with the code that was likely meant (a near miss, or a rule's name)."""
    named = {rule.name: code for code, rule in rules.items()}.get(entry.lower().replace("_", "-"))
    hint = f"; that is the name of {named}: use its code" if named else did_you_mean(entry, rules)
    return f"unknown rule code or prefix {entry!r}{hint}"


def did_you_mean(word: str, choices) -> str:
    """``"; did you mean 'graph'?"`` for a near miss, else ``""``."""
    import difflib  # only a misspelt key or code needs it

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _selects(entry: str, rule: type[Rule]) -> bool:
    if entry == rule.code:
        return True
    return rule.default_enabled and (entry == "ALL" or rule.code.startswith(entry))


@functools.lru_cache(maxsize=16)
def _names_matcher(patterns: tuple[str, ...]) -> re.Pattern:
    """One expression for ``fnmatch.fnmatch(name, p)`` over every exclude pattern: discovery asks it of
    every file and folder of a tree."""
    return re.compile("|".join(fnmatch.translate(os.path.normcase(p)) for p in patterns) or "(?!)")


def _glob_match(rel: str, pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    if fnmatch.fnmatch(rel, pattern):
        return True
    if pattern.endswith("/**") and (rel == pattern[:-3] or rel.startswith(pattern[:-2])):
        return True
    if pattern.startswith("**/") and fnmatch.fnmatch(rel, pattern[3:]):
        return True
    return "/" not in pattern and fnmatch.fnmatch(rel.rsplit("/", 1)[-1], pattern)


def find_pyproject(start: Path) -> Path | None:
    """Nearest ``pyproject.toml`` with a ``[tool.rnnlint]`` table, walking up."""
    directory = Path(os.path.realpath(start))  # Path.resolve() raises on a symlink loop
    while not directory.is_dir() and directory.parent != directory:
        directory = directory.parent
    for candidate in (directory, *directory.parents):
        file = candidate / "pyproject.toml"
        if file.is_file():
            try:
                data = tomllib.loads(read_regular(file).decode("utf-8"))
            except OSError:
                continue
            except UnicodeDecodeError:
                raise ConfigError(f"{file}: invalid TOML: not valid UTF-8") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{file}: invalid TOML: {exc}") from None
            tool = data.get("tool", {})
            if isinstance(tool, dict) and "rnnlint" in tool:  # `tool = 5` is not our business
                return file
    return None


def _folder_of(start: Path) -> Path:
    """``start`` when it is a folder, else the nearest folder above it."""
    directory = Path(os.path.realpath(start))
    while not directory.is_dir() and directory.parent != directory:
        directory = directory.parent
    return directory


def _marked_root(directory: Path) -> Path | None:
    """The nearest folder at or above ``directory`` that says it is a project (pyproject.toml, .git)."""
    for candidate in (directory, *directory.parents):
        if (candidate / "pyproject.toml").is_file() or (candidate / ".git").exists():
            return candidate
    return None


def input_folders(paths: list[Path]) -> tuple[Path, ...]:
    """The project of each of ``paths`` (where a pyproject.toml or .git says, else the folder named, or a
    file's own folder), outermost only: what is walked when no one project holds them all. ``rnnlint
    check train.py /tmp/other.py`` would otherwise walk every file under their common folder (``/``):
    minutes and gigabytes for two files."""
    named = {p if p.is_dir() else p.parent for p in (Path(os.path.realpath(q)) for q in paths)}
    folders = sorted({_marked_root(folder) or folder for folder in named})
    return tuple(f for f in folders if not any(o != f and o in f.parents for o in folders))


def common_start(paths: list[Path]) -> Path:
    resolved = [Path(os.path.realpath(p)) for p in paths] or [Path.cwd()]  # resolve() raises on a symlink loop
    try:
        return Path(os.path.commonpath([str(p) for p in resolved]))
    except ValueError:  # different drives
        return resolved[0]


def load_config(paths: list[Path], config_file: Path | None = None) -> Config:
    """Read the config that governs ``paths`` (or ``config_file`` when given)."""
    start = common_start(paths)
    file = Path(os.path.realpath(config_file)) if config_file else find_pyproject(start)
    if file is None:
        directory = _folder_of(start)
        marked = _marked_root(directory)  # one project holds every input: it is walked whole
        root = marked or directory
        folders = () if marked else input_folders(paths)
        return Config(root=root, folders=() if folders == (root,) else folders)
    try:
        data = tomllib.loads(read_regular(file).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("rnnlint", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [tool.rnnlint] must be a table")
    return parse_table(table, root=file.parent.resolve(), source=file)


def parse_table(table: dict, root: Path, source: Path | None = None) -> Config:
    config = Config(root=root, source=source)
    where = config._where
    values: dict[str, Any] = {}
    raw_options: dict[str, Any] = {}
    for key, value in table.items():
        if key in _LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where(key)}: must be a list of strings, got {value!r}")
            if key == "rule-folders":  # relative to the file that names them, not to the working directory
                values["rule_folders"] = tuple(str(_path_value(root, v, where(key))) for v in value)
                continue
            values[key.replace("-", "_")] = tuple(value)
        elif key in ("graph", "respect-gitignore"):
            if not isinstance(value, bool):
                raise ConfigError(f"{where(key)}: must be true or false, got {value!r}")
            values[key.replace("-", "_")] = value
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{where(key)}: must be a table of glob = [codes]")
            pairs = []
            for pattern, codes in value.items():
                if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                    raise ConfigError(f"{where(key)}: {pattern!r} must map to a list of codes")
                pairs.append((pattern, tuple(codes)))
            values["per_file_ignores"] = tuple(pairs)
        elif key == "cache-dir":
            if not isinstance(value, str):
                raise ConfigError(f"{where(key)}: must be a path string, got {value!r}")
            values["cache_dir"] = _path_value(root, value, where(key))
        elif key == "models":
            values["models"] = parse_models(value, root, where(key))
        elif isinstance(value, dict):
            raw_options[key] = value  # a rule's options; checked against the rules in with_rules()
        else:
            raise ConfigError(f"{where(key)}: unknown key {key!r}{did_you_mean(key, _TOP_KEYS)}")
    return replace(config, **values, _raw_options=raw_options)


def _path_value(root: Path, value: str, where: str) -> Path:
    """A path setting, absolute, relative to the config file's folder; a clean error for nonsense."""
    if not value or "\0" in value:
        raise ConfigError(f"{where}: {value!r} is not a usable path (empty, or contains a NUL character)")
    try:
        return Path(os.path.realpath(root / value))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a usable path: {exc}") from None


@dataclass(frozen=True)
class ModelConfig:
    """How the graph stage builds one model: ``[tool.rnnlint.models] "module:Name" = {...}``."""

    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    factory: str | None = None  # "module:function" that returns the model
    inputs: list | None = None  # [{shape = [4, 20], dtype = "int64", low = 0, high = 100}]
    skip: bool = False


_MODEL_KEYS = ("args", "kwargs", "factory", "inputs", "skip")
_INPUT_KEYS = ("shape", "dtype", "low", "high")


def parse_models(raw: Any, root: Path, where: str) -> dict[str, ModelConfig]:
    """Validate ``[tool.rnnlint.models]`` when the config is read, before any stage runs.

    A typo here must fail ``check --static`` (what pre-commit runs) as it fails
    ``check --graph``: the table is checked whether or not the graph stage runs.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    parsed: dict[str, ModelConfig] = {}
    for key, value in raw.items():
        here = f"{where} {key!r}"
        if ":" not in key or not all(part for part in key.split(":", 1)):
            raise ConfigError(f"{here}: keys are \"module:Name\", e.g. \"models.seq2seq:Seq2Seq\"")
        if not isinstance(value, dict):
            raise ConfigError(f"{here}: must be a table, e.g. {{ args = [1000, 256] }}")
        for name in value:
            if name not in _MODEL_KEYS:
                raise ConfigError(f"{here}: unknown key {name!r}{did_you_mean(name, _MODEL_KEYS)}; "
                                  f"known: {', '.join(_MODEL_KEYS)}")
        args, kwargs = value.get("args", []), value.get("kwargs", {})
        factory, skip, inputs = value.get("factory"), value.get("skip", False), value.get("inputs")
        if not isinstance(args, list):
            raise ConfigError(f"{here}.args: must be a list")
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{here}.kwargs: must be a table")
        if factory is not None and (not isinstance(factory, str) or ":" not in factory):
            raise ConfigError(f"{here}.factory: must be \"module:function\"")
        if not isinstance(skip, bool):
            raise ConfigError(f"{here}.skip: must be true or false")
        if inputs is not None:
            if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
                raise ConfigError(f"{here}.inputs: must be a list of tables like {{ shape = [4, 20], dtype = \"int64\" }}")
            for item in inputs:
                for name in item:
                    if name not in _INPUT_KEYS:
                        raise ConfigError(f"{here}.inputs: unknown key {name!r}{did_you_mean(name, _INPUT_KEYS)}; "
                                          f"known: {', '.join(_INPUT_KEYS)}")
                shape = item.get("shape", [])
                if not isinstance(shape, list) or not all(
                    isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape
                ):
                    raise ConfigError(f"{here}.inputs: shape must be a list of positive integers")
        parsed[key] = ModelConfig(args, kwargs, factory, inputs, skip)
    check_model_keys(parsed, root, where)
    return parsed


def check_model_keys(models: dict[str, ModelConfig], root: Path, where: str) -> None:
    """Refuse ``[tool.rnnlint.models]`` entries that name code outside the project.

    The graph stage imports the module of each key (and of its ``factory``) and
    calls the attribute with the configured arguments, so
    ``"builtins:exec" = {args = [...]}`` or ``"os:system"`` would run anything
    from the config alone. A module is accepted only when it is a file of the
    project (``<module path>.py`` or a package ``__init__.py``, found from the
    project root, its ``src/``, or a folder inside the project) whose real path
    lies under the root, and never when it names a built-in or standard-library
    module (those are found before any project file).
    """
    for key, value in models.items():
        targets = [("key", key)] + ([("factory", value.factory)] if value.factory else [])
        for what, target in targets:
            module = target.partition(":")[0].strip()
            if not module:
                continue  # ":function": no module to import
            if not _project_module(root, module):
                label = f"{key!r}" if what == "key" else f"{key!r}.factory ({target!r})"
                raise ConfigError(
                    f"{where} {label}: {module!r} is not a module of this project (under {root}); "
                    "the graph stage only builds the project's own models"
                )


def _project_module(root: Path, module: str) -> bool:
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        return False
    if parts[0] in sys.builtin_module_names or parts[0] in getattr(sys, "stdlib_module_names", ()):
        return False
    real_root = os.path.realpath(root)

    def inside(candidate: Path) -> bool:
        if not candidate.is_file():
            return False
        real = os.path.realpath(candidate)
        return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)

    def found_in(base: Path) -> bool:
        target = base.joinpath(*parts)
        return inside(target.with_suffix(".py")) or inside(target / "__init__.py")

    if found_in(root) or found_in(root / "src"):
        return True
    # a script folder that is not a package (`train:make_model` for fixtures/x/train.py):
    # look in the project's folders, skipping the default excludes, within a bounded walk
    budget = 5000
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in DEFAULT_EXCLUDE)]
        budget -= 1
        if budget < 0:
            return False
        if found_in(Path(dirpath)):
            return True
    return False
