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
