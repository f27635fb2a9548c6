"""The long fuzzing run, on demand (the bounded one is ``tests/test_fuzz.py``).

    python tests/benchmarks/fuzz_long.py --programs 2000 [--seed 1] [--out failures.txt]

First every fixture project goes through every meaning-preserving mutation
(the test run applies two per project, ``MUTATIONS_PER_PROJECT``). Then
``--programs`` programs are drawn in turn from the three sources of
``tests/test_fuzz.py``: a fixture project under a random meaning-preserving mutation (findings
compared with the unmutated project), a composed training script, and
hypothesmith code (grammar or libcst nodes) placed in a recurrent training
file. Every program goes through check, ``fix --apply --unsafe-fixes`` and a
second fix, in-process; the invariants are those of ``check_project``. Prints
how many programs ran, per source, and every failure with its program; exits 1
when there was one.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.test_fuzz import (  # noqa: E402
    MUTATIONS,
    PROJECTS,
    check_project,
    check_text,
    compare_findings,
    compose_program,
    copy_project,
    embed_generated,
    fixture_projects,
    mutate_and_check,
    mutate_project,
    pick_encoding,
    rotated,
)


def hypothesmith_programs(count: int, seed: int):
    """``count`` valid programs from hypothesmith, as a list (hypothesis drives the generation)."""
    import hypothesmith
    from hypothesis import HealthCheck, given, settings, strategies as st

    programs: list[str] = []

    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(source=st.one_of(hypothesmith.from_grammar(), hypothesmith.from_node()),
           where=st.sampled_from(["after", "loop"]))
    def collect(source, where):
        program = embed_generated(source, where)
        if program is not None:
            programs.append(program)

    random.seed(seed)
    collect()
    return programs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=500, help="how many programs to run (default 500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the failures to this file")
    args = parser.parse_args()
    warnings.simplefilter("ignore", SyntaxWarning)  # generated code like `1()`: CPython warns while compiling

    rng = random.Random(args.seed)
    projects = fixture_projects()
    counts: Counter = Counter()
    failures: list[str] = []
    share = max(1, args.programs // 3)
    generated = hypothesmith_programs(share, args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnlint-fuzz-") as tmp:
        work = Path(tmp)
        for number, project in enumerate(PROJECTS):  # every mutation on every project, the first one fixed
            problems = mutate_and_check(project, work / "every", rotated(MUTATIONS, number), rng)
            failures += [f"[{project.relative_to(REPO)}, every mutation] {p}" for p in problems]
            counts["every-mutation project"] += 1
        originals: dict[Path, object] = {}
        for i in range(args.programs):
            source = ("mutated-fixture", "composed", "hypothesmith")[i % 3]
            if source == "hypothesmith" and not generated:
                source = "composed"
            if source == "mutated-fixture":
                project, mutation = rng.choice(projects), rng.choice(MUTATIONS)
                if project not in originals:
                    originals[project] = check_project(copy_project(project, work / "original"), fix=False)
                root = copy_project(project, work / "mutated")
                if not mutate_project(root, mutation, rng):
                    source = "composed"  # the mutation does not apply to this project: compose instead
                else:
                    result = check_project(root)
                    label = f"{project.relative_to(REPO)} under {mutation.name}"
                    problems = list(result.failures)
                    if mutation.preserves:
                        problems += compare_findings(originals[project], result, mutation)
                    failures += [f"[{label}] {p}" for p in problems]
                    counts[source] += 1
                    continue
            if source == "composed":
                program, newline = compose_program(rng)
            else:
                program, newline = generated.pop(), rng.choice(["\n", "\n", "\r\n"])
            encoding = pick_encoding(rng)
            result = check_text(work / "program", program, newline=newline, encoding=encoding)
            failures += [f"[{source} program #{i}, newline {newline!r}, {encoding}]\n{program}\n-> {f}"
                         for f in result.failures]
            counts[source] += 1
    elapsed = time.perf_counter() - start
    total = sum(counts.values())
    print(f"{total} programs in {elapsed:.0f} s: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print(f"{len(failures)} failures")
    for failure in failures:
        print("-" * 72)
        print(failure)
    if args.out:
        args.out.write_text("\n\n".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
