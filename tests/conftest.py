"""Suite-wide settings: nothing a test run makes lands in the checkout."""

from __future__ import annotations

import tempfile


def pytest_configure(config) -> None:
    # `-n auto` hands tests out one by one; tests that read one shared expensive run (a module-scoped
    # fixture, their tests marked `xdist_group`) must stay on one worker, or each worker repeats the run.
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"
    # Hypothesis keeps its example database and caches in ./.hypothesis unless told otherwise.
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:  # pragma: no cover - a dev dependency
        return
    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="rnnlint-hypothesis-"))
