"""``python -m rnnlint``: the same command line as the ``rnnlint`` script."""

import os
import sys


def _drop_working_folder() -> None:
    """``python -m`` puts the working folder first on ``sys.path``: a checked project's own ``random.py`` or
    ``tokenize.py`` would then stand in for the standard library's when rnnlint (or torch) imports it later
    in the run. The ``rnnlint`` script never had that entry; a source checkout that is not installed keeps it
    (rnnlint itself is found there)."""
    if not sys.path or sys.path[0] not in ("", os.getcwd()):
        return
    here = os.path.realpath(os.getcwd())
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if package != here:
        del sys.path[0]


_drop_working_folder()

from rnnlint.cli import entry  # noqa: E402 - after the path is fixed

if __name__ == "__main__":
    entry()
