"""The observers of ``rnnlint watch`` inside the child process.

The verifier's bootstrap (``rnnlint/verify/bootstrap.py``) runs the script,
seeds the RNGs, counts optimizer steps, stops after N of them and contains the
run; the parent names this file in the config's ``extensions`` and the
bootstrap loads it by path and calls :func:`install` before the script starts.
Like the bootstrap it never imports rnnlint: it loads ``observe.py`` by path.

Findings are written to ``config["watch_events"]`` as JSON lines as soon as
they are observed (so a crash or a kill right after still leaves them), and
what the watcher measured is written when the run ends.
"""

from __future__ import annotations

import json
import os


def install(torch, recorder, config: dict) -> None:
    observe = _load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "observe.py"))
    out = open(config["watch_events"], "a", encoding="utf-8", buffering=1)

    def emit(finding: dict) -> None:
        out.write(json.dumps({"finding": finding}, default=str) + "\n")

    watcher = observe.Watcher(roots=[config["project"]], on_finding=emit, warn=False, torch=torch,
                              warm=int(config.get("watch_warm", 20)), every=int(config.get("watch_every", 10)))
    watcher.attach()
    finish = recorder.finish

    def finish_with_measurements(*args, **kwargs):
        try:
            out.write(json.dumps({"measured": watcher.measured()}, default=str) + "\n")
            out.close()
        finally:
            finish(*args, **kwargs)

    recorder.finish = finish_with_measurements


def _load(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("_rnnlint_watch_observe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
