"""Speed of the static stage against its floor and its anchors (run on demand).

    python tests/benchmarks/bench_static.py            # everything (several minutes)
    python tests/benchmarks/bench_static.py --quick    # first 300 files of the corpus, no Fixit
    python tests/benchmarks/bench_static.py --quick --repo /tmp/fairseq   # also a repository against Ruff

Measures, each as a whole process (start-up included), with peak memory:

* one-file ``rnnlint check --static`` as pre-commit runs it, against
  ``python -c pass`` and ``python -c "import libcst"``: a training file, a file
  that cannot matter (no recurrent, training or configuration token: the
  issue's target) and a CNN training file (nothing recurrent near it, but its
  project must be searched for who imports it); each with ``--no-cache``
  and with the cache on and filled (what pre-commit runs on a second commit);
* ``rnnlint check --static --no-cache`` over torch's own installed sources
  (a large real corpus on every machine), with one worker and with all cores,
  and warm (cache filled) — against the libcst parse-only floor (parse every
  file, one process) and ``fixit lint`` with its default rules on the same tree;
* with ``--repo``, a real repository (facebookresearch/fairseq in the README):
  cold against ``ruff check --select ALL --no-cache``, warm against ``ruff check``
  with its cache, each rnnlint run paired with a Ruff run ``--pairs`` times (in
  turn first; the ratio is the median of the pairs' ratios, as ``farm-bench``
  takes it); warm runs work on a copy of the tree, its cache in the copy's
  ``.rnnlint_cache`` (the project is the same as cold);
* each rnnlint tree run also with ``RNNLINT_RELEVANCE=0`` (every file the text
  prefilter passes reaches libcst, as before the project map): the map's gain.

Not part of the test run: timings depend on the machine. Figures go in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ONE_FILE = REPO / "fixtures" / "char_rnn" / "train.py"
IRRELEVANT = REPO / "fixtures" / "cnn_clean" / "train.py"  # a CNN: trains, but nothing recurrent near it
# the "cannot matter": no recurrent, training or configuration token (a checkpoint helper)
PLAIN = REPO / "fixtures" / "cnn_clean" / "checkpoints.py"


# As users run it: with bytecode caches. A shell that sets PYTHONDONTWRITEBYTECODE would make every
# process compile rnnlint's modules again (about 60 ms of a one-file run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


WITHOUT_MAP = dict(ENV, RNNLINT_RELEVANCE="0")
SKIP_BASELINE = False  # --no-baseline


def timed(cmd: list[str], cwd: Path | None = Path("/"), env: dict | None = None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit code of one whole process (run from a neutral folder)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def best_of(n: int, cmd: list[str], **kw) -> tuple[float, float, float]:
    """Median and minimum wall seconds of ``n`` runs (a shared machine is noisy), and peak MiB."""
    runs = [timed(cmd, **kw) for _ in range(n)]
    return statistics.median(r[0] for r in runs), min(r[0] for r in runs), max(r[1] for r in runs)


def corpus(limit: int | None) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        sys.exit("torch is not installed: pip install torch==2.13.0")
    root = Path(spec.origin).parent
    if limit is None:
        return root
    target = Path(tempfile.mkdtemp(prefix="rnnlint-corpus-"))
    for i, file in enumerate(sorted(root.rglob("*.py"))[:limit]):
        dest = target / f"f{i:05d}" / file.name
        dest.parent.mkdir(parents=True)
        shutil.copy(file, dest)
    return target


PARSE_FLOOR = """
import sys, pathlib, libcst
n = 0
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    try:
        libcst.parse_module(f.read_bytes()); n += 1
    except Exception:
        pass
print(n)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 files, no Fixit")
    parser.add_argument("--repeat", type=int, default=21, help="repeats for the one-file timings")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--repo", type=Path, help="a repository checkout to time against Ruff (e.g. fairseq)")
    parser.add_argument("--pairs", type=int, default=7,
                        help="with --repo: rnnlint and Ruff runs alternated this many times, cold and warm")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the runs without the map (RNNLINT_RELEVANCE=0: minutes on a large tree)")
    args = parser.parse_args()
    global SKIP_BASELINE
    SKIP_BASELINE = args.no_baseline
    py = sys.executable
    results: dict[str, dict] = {}

    print("== one file, whole process (median and min of", args.repeat, ")")
    for label, cmd in [
        ("python -c pass", [py, "-c", "pass"]),
        ("python -c 'import libcst'", [py, "-c", "import libcst"]),
        ("rnnlint check --static FILE", [py, "-m", "rnnlint", "check", "--static", "--no-cache", str(ONE_FILE)]),
        ("rnnlint check --static CNN-FILE", [py, "-m", "rnnlint", "check", "--static", "--no-cache",
                                             str(IRRELEVANT)]),
        ("the same, without the map", [py, "-m", "rnnlint", "check", "--static", "--no-cache", str(IRRELEVANT)]),
        ("rnnlint check --static PLAIN-FILE", [py, "-m", "rnnlint", "check", "--static", "--no-cache", str(PLAIN)]),
        ("rnnlint check --static FILE (cache on, warm)", [py, "-m", "rnnlint", "check", "--static", str(ONE_FILE)]),
        ("rnnlint check --static CNN-FILE (cache on, warm)", [py, "-m", "rnnlint", "check", "--static",
                                                             str(IRRELEVANT)]),
    ]:
        env = WITHOUT_MAP if "without the map" in label else None
        if env is not None and SKIP_BASELINE:
            continue
        if "warm" in label:
            timed(cmd, env=env)  # fill the cache (the checkout's .rnnlint_cache, as pre-commit's)
        wall, fastest, rss = best_of(args.repeat, cmd, env=env)
        results[label] = {"seconds": round(wall, 3), "min_seconds": round(fastest, 3), "peak_mib": round(rss, 1)}
        print(f"  {label:34s} {wall:7.3f} s  (min {fastest:.3f} s)  {rss:7.1f} MiB")
    print("== one file: a training file {:.3f} s (target <= 0.20 s), one that cannot matter {:.3f} s (<= 0.10 s), "
          "a CNN training file {:.3f} s; with the cache on {:.3f} s and {:.3f} s (CNN)".format(
              *(results[k]["seconds"] for k in ("rnnlint check --static FILE", "rnnlint check --static PLAIN-FILE",
                                                "rnnlint check --static CNN-FILE",
                                                "rnnlint check --static FILE (cache on, warm)",
                                                "rnnlint check --static CNN-FILE (cache on, warm)"))))

    tree = corpus(300 if args.quick else None)
    describe(tree)
    warm_tree = copy_of(tree)
    runs = [
        ("libcst parse floor (1 process)", [py, "-c", PARSE_FLOOR, str(tree)]),
        ("rnnlint check --static -j1 (cold)", [py, "-m", "rnnlint", "check", "--static", "--exit-zero", "-j", "1",
                                              "--no-cache", str(tree)]),
        ("rnnlint check --static (cold, all cores)", [py, "-m", "rnnlint", "check", "--static", "--exit-zero",
                                                     "--no-cache", str(tree)]),
        ("the same, without the map", [py, "-m", "rnnlint", "check", "--static", "--exit-zero", "--no-cache",
                                       str(tree)]),
        ("rnnlint check --static (warm: results cache)", [py, "-m", "rnnlint", "check", "--static", "--exit-zero",
                                                      str(warm_tree)]),
    ]
    if not args.quick and shutil.which("fixit"):
        # Fixit silently skips paths inside site-packages: give it a copy of the same files.
        copy = Path(tempfile.mkdtemp(prefix="rnnlint-fixit-")) / "corpus"
        shutil.copytree(tree, copy)
        runs.append(("fixit lint (default rules)", ["fixit", "lint", str(copy)]))
    for label, cmd in runs:
        if "without the map" in label and SKIP_BASELINE:
            continue
        if "warm" in label:
            timed(cmd)  # fill the cache
        wall, rss, code = timed(cmd, env=WITHOUT_MAP if "without the map" in label else None)
        results[label] = {"seconds": round(wall, 2), "peak_mib": round(rss, 1), "exit": code}
        print(f"  {label:44s} {wall:8.2f} s  {rss:7.1f} MiB  (exit {code})")
    floor = results["libcst parse floor (1 process)"]["seconds"]
    cold = results["rnnlint check --static (cold, all cores)"]["seconds"]
    before = results.get("the same, without the map", {}).get("seconds")
    print(f"== rnnlint cold / parse floor: {cold / floor:.2f}x (target <= 0.5x)"
          + (f"; without the map {before / floor:.2f}x" if before else ""))
    if "fixit lint (default rules)" in results:
        fixit = results["fixit lint (default rules)"]["seconds"]
        print(f"== fixit / rnnlint cold: {fixit / cold:.1f}x faster (target >= 2x)")
    if args.repo:
        results.update(against_ruff(args.repo.resolve(), args.pairs))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def describe(tree: Path) -> None:
    """Print the size of ``tree``."""
    files = list(tree.rglob("*.py"))
    lines = sum(f.read_bytes().count(b"\n") for f in files)
    print(f"== {tree} ({len(files)} files, {lines:,} lines)")


def copy_of(tree: Path) -> Path:
    """A copy of ``tree`` (without ``.git`` and caches) for the warm runs: their cache goes in the copy's
    ``.rnnlint_cache``, as in a user's checkout, and the checked project is the same as the cold run's."""
    target = Path(tempfile.mkdtemp(prefix="rnnlint-bench-warm-")) / tree.name
    shutil.copytree(tree, target, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".rnnlint_cache", ".ruff_cache", "__pycache__"))
    return target


def paired(pairs: int, a: list[str], b: list[str]) -> tuple[dict, dict, float]:
    """``a`` and ``b`` run one after the other ``pairs`` times, in turn first (the machine's speed drifts:
    each ratio is taken within its pair): the median wall seconds, the peak MiB and the exit code of each,
    and the median of the pairs' ratios a / b."""
    runs: dict[str, list] = {"a": [], "b": []}
    for i in range(pairs):
        for side in ("a", "b") if i % 2 == 0 else ("b", "a"):
            runs[side].append(timed(a if side == "a" else b))
    ratio = statistics.median(x[0] / y[0] for x, y in zip(runs["a"], runs["b"]))

    def summary(side: str) -> dict:
        return {"seconds": round(statistics.median(r[0] for r in runs[side]), 3),
                "peak_mib": round(max(r[1] for r in runs[side]), 1), "exit": runs[side][-1][2]}

    return summary("a"), summary("b"), ratio


def against_ruff(tree: Path, pairs: int) -> dict[str, dict]:
    """A real repository, cold and warm, against Ruff in the same run (Ruff on PATH: pip install ruff): each
    rnnlint command paired with Ruff's ``pairs`` times (see :func:`paired`)."""
    ruff = shutil.which("ruff")
    if ruff is None:
        sys.exit("ruff is not on PATH: pip install ruff (into this virtual environment, not the project's deps)")
    py = sys.executable
    describe(tree)
    warm_tree = copy_of(tree)
    ruff_cache = warm_tree.parent / "ruff"
    rnnlint = [py, "-m", "rnnlint", "check", "--static", "--exit-zero"]
    ruff_cold = [ruff, "check", "--select", "ALL", "--no-cache", "--exit-zero", "--quiet", str(tree)]
    ruff_warm = [ruff, "check", "--exit-zero", "--quiet", "--cache-dir", str(ruff_cache), str(warm_tree)]
    results = {}

    def show(label: str, figures: dict) -> None:
        results[f"{tree.name}: {label}"] = figures
        print(f"  {label:46s} {figures['seconds']:8.2f} s  {figures['peak_mib']:7.1f} MiB  (exit {figures['exit']})")

    print(f"  (medians of {pairs} pairs, each rnnlint run beside a Ruff run)")
    cold, ruff_figures, cold_ratio = paired(pairs, [*rnnlint, "--no-cache", str(tree)], ruff_cold)
    show("ruff check --select ALL --no-cache (cold)", ruff_figures)
    show("rnnlint check --static --no-cache (cold)", cold)
    if not SKIP_BASELINE:
        wall, rss, code = timed([*rnnlint, "--no-cache", str(tree)], env=WITHOUT_MAP)
        show("the same, without the map", {"seconds": round(wall, 2), "peak_mib": round(rss, 1), "exit": code})
    timed(ruff_warm)  # fill both caches
    timed([*rnnlint, str(warm_tree)])
    warm, ruff_figures, warm_ratio = paired(pairs, [*rnnlint, str(warm_tree)], ruff_warm)
    show("ruff check (warm: its cache)", ruff_figures)
    show("rnnlint check --static (warm: results cache)", warm)
    before = results.get(f"{tree.name}: the same, without the map", {}).get("seconds")
    print(f"== cold: rnnlint / ruff --select ALL {cold_ratio:.2f}x (target <= 2x"
          + (f"; without the map {before / results[f'{tree.name}: ruff check --select ALL --no-cache (cold)']['seconds']:.1f}x"
             if before else "")
          + f"); warm: rnnlint / ruff {warm_ratio:.2f}x (target <= 1x); medians of the pairs' ratios")
    results[f"{tree.name}: ratios"] = {"cold": round(cold_ratio, 3), "warm": round(warm_ratio, 3), "pairs": pairs}
    return results


if __name__ == "__main__":
    main()
