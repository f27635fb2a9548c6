"""Suite-wide settings: nothing a test run makes lands in the checkout."""

from __future__ import annotations

import tempfile


def pytest_configure(config) -> None:
    # Hypothesis keeps its example database and caches in ./.hypothesis unless told otherwise.
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:  # pragma: no cover - a dev dependency
        return
    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="rnnlint-hypothesis-"))


def pytest_collection_modifyitems(config, items) -> None:
    # The slow tests (trial runs, child processes, seconds each) first: with ``-n auto`` the workers then
    # end on the many quick ones and finish together, instead of one worker running the last trial runs
    # while the other waits (the order within each tier is the files' own; every worker sorts the same).
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
