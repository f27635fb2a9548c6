"""Make a large synthetic project out of the fixtures (for the speed benchmarks).

    python tests/benchmarks/make_synthetic.py /tmp/synthetic --files 20000

Copies every ``.py`` file of ``fixtures/`` (keeping each fixture project's
layout, so cross-file imports such as ``from models import Seq2Seq`` still
resolve inside each copy) into ``copy_00000/``, ``copy_00001/``, ... until the
tree holds ``--files`` Python files. The result is realistic recurrent training
code, with findings, at any size; a ``pyproject.toml`` at its top makes it one
project (one cache, one config).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture_files() -> list[Path]:
    return sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*.py") if "__pycache__" not in p.parts)


def make(target: Path, files: int) -> int:
    """Fill ``target`` with ``files`` Python files; returns how many were written."""
    sources = fixture_files()
    if not sources:
        raise SystemExit(f"no fixtures found under {FIXTURES}")
    target.mkdir(parents=True, exist_ok=True)
    (target / "pyproject.toml").write_text("[tool.rnnlint]\n", "utf-8")
    written = 0
    copy = 0
    while written < files:
        base = target / f"copy_{copy:05d}"
        for rel in sources:
            if written == files:
                break
            dest = base / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(FIXTURES / rel, dest)
            written += 1
        copy += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path)
    parser.add_argument("--files", type=int, default=20_000)
    args = parser.parse_args()
    if args.target.exists() and any(args.target.iterdir()):
        raise SystemExit(f"{args.target} is not empty")
    count = make(args.target, args.files)
    print(f"{count} files in {args.target}")


if __name__ == "__main__":
    main()
