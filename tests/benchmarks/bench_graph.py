"""Cost of the graph stage, per model and per fixture project (run on demand).

    python tests/benchmarks/bench_graph.py               # every project in fixtures/graph
    python tests/benchmarks/bench_graph.py seq2seq_bad   # some of them

For each project:

* ``rnnlint check --static`` and ``rnnlint check`` as whole processes (wall
  time, best of ``--repeat``): the difference is what the graph stage adds;
* inside the stage: finding the models (parent, static), starting the child
  (importing torch, once per run), and building + analysing each model (the
  child's own clock, so queueing in the parent is excluded).

Not part of the test run: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rnnlint.config import load_config  # noqa: E402
from rnnlint.graph.finder import ModelFinder  # noqa: E402
from rnnlint.graph.stage import run_child, run_graph_stage  # noqa: E402
from rnnlint.static.runner import Session  # noqa: E402


def wall(args: list[str], cwd: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rnnlint", *args], cwd=cwd, capture_output=True, check=False)
        best = min(best, time.perf_counter() - start)
    return best


def inside(project: Path) -> None:
    session = Session(load_config([project]), use_cache=False)
    files = sorted(project.rglob("*.py"))
    start = time.perf_counter()
    specs, _ = ModelFinder(session).find(files)
    find_s = time.perf_counter() - start
    captured: dict = {}

    def timed(request, model_timeout, stage_timeout):
        captured.update(run_child(request, model_timeout, stage_timeout))
        return captured

    start = time.perf_counter()
    run_graph_stage(files, session, executor=timed)
    stage_s = time.perf_counter() - start
    starts = captured.get("", {}).get("seconds", [])
    print(f"  find models (parent, static): {find_s * 1000:7.1f} ms  ({len(specs)} found)")
    print(f"  child start (import torch):   {sum(starts):7.2f} s   ({len(starts)} child process{'es' if len(starts) != 1 else ''})")
    for number, spec in enumerate(s for s in specs if not s.skip):
        result = captured.get(str(number), {})
        seconds = result.get("seconds")
        shown = f"{seconds:7.2f} s" if seconds is not None else "      - "
        extra = f"graph: {result.get('graph') or '-'}" if result.get("status") == "ok" else result.get("status", "?")
        print(f"  {spec.key:32} {shown}   {extra}")
    print(f"  whole stage:                  {stage_s:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("projects", nargs="*")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    root = REPO / "fixtures" / "graph"
    names = args.projects or sorted(p.name for p in root.iterdir() if p.is_dir())
    for name in names:
        project = root / name
        print(f"{name}:")
        static = wall(["check", "--static", "--no-cache", name], root, args.repeat)
        full = wall(["check", "--graph", "--no-cache", name], root, args.repeat)
        print(f"  rnnlint check --static:       {static:7.2f} s")
        print(f"  rnnlint check --graph:        {full:7.2f} s   (graph stage adds {full - static:.2f} s)")
        inside(project)


if __name__ == "__main__":
    main()
