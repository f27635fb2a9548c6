"""Cold against warm ``rnnlint check --static``: what the results cache saves (run on demand).

    python tests/benchmarks/bench_cache.py                    # torch's sources + 20,000 synthetic files
    python tests/benchmarks/bench_cache.py --files 2000 --skip-torch

Each figure is one whole process (start-up, discovery, output included), with
peak memory. "cold" starts from an empty cache directory (and fills it),
"warm" runs again on the unchanged tree; the two outputs (JSON) must be
identical. Target: warm under 10% of cold. The trees:

* torch's own installed sources: a large real corpus on every machine (the
  cache directory is a temporary one named by ``--config``, so nothing is
  written into site-packages);
* a synthetic project of ``--files`` Python files made by copying the fixture
  projects (``make_synthetic.py``): realistic recurrent training code with
  findings and cross-file imports.

Not part of the test run: timings depend on the machine. Measured here (2
cores shared with other jobs, so cold figures are inflated by contention; one
run each):

* torch 2.13 sources, 2,285 files: cold 369.7 s, warm 2.2 s (0.6%), output
  identical; peak RSS of the main process 849 / 35 MiB;
* synthetic, 20,000 files: cold 1219.7 s, warm 11.7 s (1.0%), output identical;
  peak RSS of the main process 187 / 120 MiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_static import corpus  # noqa: E402
from make_synthetic import make  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS (MiB), exit code and a hash of stdout of one whole process."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        digest = hashlib.blake2b(out.read(), digest_size=8).hexdigest()
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), digest


def cold_and_warm(label: str, tree: Path, config: Path | None, cache: Path, cwd: Path) -> dict:
    """``cwd`` is outside ``tree``: ``python -m`` run inside torch's folder would import its ``types.py``."""
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-m", "rnnlint", "check", "--static", "--exit-zero", "--output-format", "json"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd.append(str(tree))
    files = sum(1 for _ in tree.rglob("*.py"))
    print(f"== {label}: {tree} ({files} files)", flush=True)
    result: dict = {"files": files}
    for run in ("cold", "warm"):
        wall, rss, code, digest = timed(cmd, cwd=cwd)
        result[run] = {"seconds": round(wall, 2), "peak_mib": round(rss, 1), "exit": code, "output": digest}
        print(f"  {run:5s} {wall:8.2f} s  {rss:7.1f} MiB  (exit {code})", flush=True)
    result["warm_over_cold"] = round(result["warm"]["seconds"] / result["cold"]["seconds"], 4)
    result["identical_output"] = result["warm"]["output"] == result["cold"]["output"]
    print(f"  warm / cold: {result['warm_over_cold']:.1%} (target < 10%); "
          f"identical output: {result['identical_output']}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000, help="size of the synthetic project")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rnnlint-bench-cache-"))
    results: dict[str, dict] = {}
    try:
        if not args.skip_torch:
            config = work / "pyproject.toml"
            config.write_text(f'[tool.rnnlint]\ncache-dir = "{work / "torch-cache"}"\n')
            results["torch sources"] = cold_and_warm("torch sources", corpus(None), config, work / "torch-cache", work)
        if not args.skip_synthetic:
            tree = work / "synthetic"
            make(tree, args.files)
            results["synthetic"] = cold_and_warm(
                f"synthetic project ({args.files} files)", tree, None, tree / ".rnnlint_cache", work
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
