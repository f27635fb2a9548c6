"""The built-in rules as data: what selecting them and deciding which files they read needs.

Importing the rule pack imports libcst and the flow model (about 0.2 s): a
pre-commit run over a file no rule can report in, and a warm run whose
findings are all cached, need neither. They need each rule's code, name,
default, options (to validate the config), text triggers and relevance words, and its documentation
(SARIF output carries it):
:data:`CATALOGUE` (``rnnlint/data/rule_catalogue.json``) holds exactly that,
generated from the rules themselves, so the rule set still decides relevance.
The run turns an entry into its rule class (:func:`rule_classes`) only when a
file reaches libcst.

Regenerate after changing a rule's code, name, default, options, triggers,
relevance words or docstring (``tests/test_catalogue.py`` fails while it is stale)::

    python -m rnnlint.static.catalogue

A project's own rule folders (``rule-folders``) are imported as before: they
are project code, and their rules are their own catalogue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnnlint.diagnostics import Applicability, Severity
from rnnlint.rule import Option, triggered

CATALOGUE = Path(__file__).resolve().parent.parent / "data" / "rule_catalogue.json"


class RuleEntry:
    """One built-in rule as the catalogue describes it: the class attributes
    :class:`~rnnlint.config.Config` and the runner read, without the rule's code."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.code: str = data["code"]
        self.name: str = data["name"]
        self.severity = Severity(data["severity"])
        self.default_enabled: bool = data["default_enabled"]
        self.fix_applicability = Applicability(data["fix"]) if data["fix"] else None
        self.triggers: tuple = tuple(t if isinstance(t, str) else tuple(t) for t in data["triggers"])
        words = data["relevant_words"]
        self.relevant_words: tuple[str, ...] | None = tuple(words) if words is not None else None
        self.options = {key: Option(default=tuple(o["default"]) if isinstance(o["default"], list) else o["default"],
                                    help=o["help"], minimum=o["minimum"], maximum=o["maximum"],
                                    exclusive_minimum=o["exclusive_minimum"])
                        for key, o in data["options"].items()}
        self._doc: str = data["doc"]

    def doc(self) -> str:
        return self._doc

    def summary(self) -> str:
        return self._doc.split("\n", 1)[0]

    def fixable(self) -> bool:
        return self.fix_applicability is not None

    def wants(self, text: str) -> bool:
        return triggered(self.triggers, text)

    def __repr__(self) -> str:
        return f"<rule {self.code} (catalogue)>"


def describe(rule) -> dict[str, Any]:
    """The catalogue's document of one rule class."""
    return {
        "code": rule.code,
        "name": rule.name,
        "severity": rule.severity.value,
        "default_enabled": rule.default_enabled,
        "fix": rule.fix_applicability.value if rule.fix_applicability else None,
        "triggers": [t if isinstance(t, str) else list(t) for t in rule.triggers],
        "relevant_words": list(rule.relevant_words) if rule.relevant_words is not None else None,
        "options": {key: {"default": list(o.default) if isinstance(o.default, tuple) else o.default, "help": o.help,
                          "minimum": o.minimum, "maximum": o.maximum, "exclusive_minimum": o.exclusive_minimum}
                    for key, o in rule.options.items()},
        "doc": rule.doc(),
    }


def generate() -> str:
    """The catalogue's text, from the built-in pack as it is now."""
    from rnnlint.static.registry import load_rules

    return json.dumps([describe(rule) for rule in load_rules().values()], indent=1) + "\n"


def load_catalogue() -> dict[str, RuleEntry]:
    """The built-in rules by code, from the catalogue."""
    return {data["code"]: RuleEntry(data) for data in json.loads(CATALOGUE.read_text(encoding="utf-8"))}


def rule_set(rule_folders: tuple[str, ...] = ()) -> dict:
    """The rules a run selects from: the catalogue's entries, or with project rule folders every rule
    class (those folders are imported anyway, and the built-in pack with them)."""
    if rule_folders:
        from rnnlint.static.registry import load_rules

        return load_rules(rule_folders)
    return load_catalogue()


def rule_classes(rules: list, rule_folders: tuple[str, ...] = ()) -> list:
    """The rule classes of ``rules`` (entries or classes), imported now."""
    if all(not isinstance(rule, RuleEntry) for rule in rules):
        return rules
    from rnnlint.static.registry import load_rules

    loaded = load_rules(rule_folders)
    return [loaded[rule.code] if isinstance(rule, RuleEntry) else rule for rule in rules]


if __name__ == "__main__":
    CATALOGUE.write_text(generate(), encoding="utf-8")
    print(f"wrote {CATALOGUE}")
