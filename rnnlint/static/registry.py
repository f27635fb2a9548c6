"""Loading rule packs: the built-in one and a project's own.

The built-in pack lives in ``rules/`` at the top of a source checkout; the wheel
maps that folder to ``rnnlint/rules`` so that no top-level package named
``rules`` is ever installed. Both are loaded the same way as a project's own
rule folders (``rule-folders`` in config): every ``*.py`` file in the folder is
imported by path and each :class:`~rnnlint.rule.Rule` subclass in it is a rule.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

from rnnlint.rule import Rule


class RuleLoadError(Exception):
    pass


def builtin_pack() -> Path:
    package = Path(__file__).resolve().parent.parent
    installed = package / "rules"
    return installed if installed.is_dir() else package.parent / "rules"


@lru_cache(maxsize=None)
def load_folder(folder: str) -> tuple[type[Rule], ...]:
    import inspect  # here: ~15 ms to import, and a run that reads no file with libcst loads no rule

    path = Path(folder)
    if not path.is_dir():
        raise RuleLoadError(f"rule folder not found: {folder}")
    tag = hashlib.blake2b(str(path.resolve()).encode(), digest_size=4).hexdigest()
    package = f"rnnlint._pack_{tag}"
    found: list[type[Rule]] = []
    for file in sorted(path.glob("*.py")):
        if file.name.startswith("_"):
            continue
        name = f"{package}.{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise RuleLoadError(f"cannot load rule file {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a broken project rule must not look like a crash of ours
            raise RuleLoadError(f"error loading rule file {file}: {type(exc).__name__}: {exc}") from exc
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Rule) and obj is not Rule and obj.__module__ == name and hasattr(obj, "code"):
                found.append(obj)
    return tuple(found)


def load_rules(extra_folders: tuple[str, ...] = ()) -> dict[str, type[Rule]]:
    """All rules by code, built-in first; a duplicate code is an error."""
    rules: dict[str, type[Rule]] = {}
    builtin = str(builtin_pack())
    for folder in (builtin, *extra_folders):
        for rule in load_folder(folder):
            if folder != builtin and "relevant_words" not in vars(rule):
                # a project's own rule may be about anything: it reads every file its triggers pass,
                # unless it says which words make a file matter to it
                rule.relevant_words = None
            if rule.code in rules and rules[rule.code] is not rule:
                raise RuleLoadError(
                    f"rule code {rule.code} is defined twice ({rules[rule.code].__module__}, {rule.__module__})"
                )
            rules[rule.code] = rule
    return dict(sorted(rules.items()))
