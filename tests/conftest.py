"""Suite-wide settings: nothing a test run makes lands in the checkout."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

_PYCACHE = "RNNLINT_TEST_PYCACHE"  # the folder this run's processes keep their bytecode in


def pytest_configure(config) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ and _PYCACHE not in os.environ:
        # The suite starts a few hundred rnnlint processes (directly, and as verify's and watch's parents).
        # Their bytecode goes to one folder of this run, never into the checkout's __pycache__; and where
        # the machine turns bytecode off (PYTHONDONTWRITEBYTECODE) each would compile rnnlint anew. The
        # prefix is given to those processes only (see _bytecode_of_started_processes): a process under
        # it ignores every __pycache__ beside the sources, so the test processes themselves (this one, the
        # xdist workers it starts) would compile torch, pytest and the standard library again, 2 to 3 s
        # each for torch alone. They read the installed bytecode and write none. Trial runs drop the
        # prefix (rnnlint.verify.trial.trial_env), the graph stage's children never see it.
        os.environ[_PYCACHE] = tempfile.mkdtemp(prefix="rnnlint-test-pycache-")
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # the xdist workers started from here
    sys.dont_write_bytecode = True
    # Hypothesis keeps its example database and caches in ./.hypothesis unless told otherwise.
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:  # pragma: no cover - a dev dependency
        return
    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="rnnlint-hypothesis-"))


@pytest.fixture(autouse=True, scope="session")
def _bytecode_of_started_processes():
    """The processes a test starts keep their bytecode in this run's folder (see pytest_configure)."""
    folder = os.environ.get(_PYCACHE)
    if folder is not None:
        os.environ["PYTHONPYCACHEPREFIX"] = folder
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_unconfigure(config) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ and _PYCACHE in os.environ:
        shutil.rmtree(os.environ.pop(_PYCACHE), ignore_errors=True)


def pytest_collection_modifyitems(config, items) -> None:
    # The slow tests (trial runs, child processes, seconds each) first: with ``-n auto`` the workers then
    # end on the many quick ones and finish together, instead of one worker running the last trial runs
    # while the other waits (the order within each tier is the files' own; every worker sorts the same).
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
