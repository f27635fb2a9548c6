"""The built-in rule pack: one rule class per module (see rnnlint/rule.py)."""
