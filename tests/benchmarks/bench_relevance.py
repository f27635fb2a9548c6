"""The project map must change nothing but the time: findings with relevance off and on, diffed.

    python tests/benchmarks/bench_relevance.py fixtures/ /tmp/devcorpus/*/   # any trees
    python tests/benchmarks/bench_relevance.py --torch 300                    # a slice of torch's sources

Runs ``rnnlint check --static --no-cache --output-format json`` on each tree twice,
as a whole process: with ``RNNLINT_RELEVANCE=0`` (every file the rules' text
prefilter passes reaches libcst, as before the project map) and with the map
deciding. Prints both times, their ratio, and every finding that differs; exits
1 if any does. Not part of the test run (``tests/test_relevance.py`` diffs the
fixtures there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_static import ENV, corpus  # noqa: E402


def findings(tree: Path, relevance: bool) -> tuple[list[dict], float, float]:
    """The findings of one run on ``tree`` (paths relative to it), its wall seconds and peak MiB."""
    env = dict(ENV, RNNLINT_RELEVANCE="1" if relevance else "0")
    cmd = [sys.executable, "-m", "rnnlint", "check", "--static", "--no-cache", "--exit-zero",
           "--output-format", "json", "."]
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) > 1:
            sys.exit(f"{tree}: exit {os.waitstatus_to_exitcode(status)}")
        out.seek(0)
        return json.loads(out.read() or b"[]"), wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", type=Path)
    parser.add_argument("--torch", type=int, metavar="N", help="also the first N files of torch's sources")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    if args.torch:
        trees.append(corpus(args.torch))
    differ = 0
    total = [0.0, 0.0]
    for tree in trees:
        before, t0, m0 = findings(tree, relevance=False)
        after, t1, m1 = findings(tree, relevance=True)
        total[0] += t0
        total[1] += t1
        key = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731
        lost = sorted(set(map(key, before)) - set(map(key, after)))
        new = sorted(set(map(key, after)) - set(map(key, before)))
        files = sum(1 for _ in tree.rglob("*.py"))
        print(f"{tree}: {files} files, {len(before)} findings; off {t0:.2f} s {m0:.0f} MiB, "
              f"on {t1:.2f} s {m1:.0f} MiB ({t1 / t0:.2f}x)" + (" DIFFERENT" if lost or new else ""))
        for line in lost:
            print("   only without the map:", line)
        for line in new:
            print("   only with the map:   ", line)
        differ += len(lost) + len(new)
    if trees:
        print(f"== all trees: off {total[0]:.1f} s, on {total[1]:.1f} s ({total[1] / total[0]:.2f}x); "
              f"{differ} findings differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
