"""``fix --apply`` killed at any moment loses nothing.

A tree of training scripts (a CRLF file, a latin-1 file with a coding cookie, a
UTF-8 file with a BOM and an executable among them) is fixed by the real
command line in a subprocess, which is killed with SIGKILL (with its worker
processes) after a seeded random delay. Every file must then be byte-identical
either to the original or to its fully fixed version (computed beforehand in
another copy), with its mode unchanged.

What a kill may leave behind, by design: a write is a temp file in the same
folder, fsynced, then swapped with the original (an atomic exchange on Linux,
``os.replace`` elsewhere), so a kill before the swap leaves the original and a
``.NAME.XXXXXXXX.rnnlint-tmp`` file (after an exchange, before its clean-up:
the fixed file and the original under the temporary name). Those
never look like sources (discovery picks up ``.py``/``.ipynb`` only) and the
next ``fix --apply`` that writes in that folder removes the ones older than a
minute (younger ones may belong to a run in progress).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import rnnlint, rnnlint_process

REPO = Path(__file__).resolve().parents[1]
SOURCES = [
    REPO / "tests" / "data" / "lstm_train.py",
    REPO / "fixtures" / "amp_lstm" / "train.py",
    REPO / "fixtures" / "verify" / "exploding_rnn" / "train.py",
    REPO / "fixtures" / "verify" / "stable_lstm" / "train.py",
]
LEFTOVER = re.compile(r"^\..+\.[A-Za-z0-9_]+\.rnnlint-tmp$")
FIX = ("fix", "--apply", "--unsafe-fixes", "--static", "--no-cache")


def build_tree(root: Path, copies: int = 3) -> None:
    """Many files with fixable findings, in several folders, plus the awkward ones."""
    for i in range(copies):
        folder = root / f"part{i}"
        folder.mkdir(parents=True)
        for j, source in enumerate(SOURCES):
            shutil.copy(source, folder / f"train_{j}.py")
    text = SOURCES[0].read_text("utf-8")
    special = root / "special"
    special.mkdir()
    (special / "crlf.py").write_bytes(text.replace("\n", "\r\n").encode())
    (special / "latin1.py").write_bytes(
        ("# -*- coding: latin-1 -*-\n# auteur: Zoë, données\n" + text).encode("latin-1")
    )
    (special / "bom.py").write_bytes(b"\xef\xbb\xbf" + ("# données\n" + text).encode("utf-8"))
    executable = special / "run.py"
    executable.write_text("#!/usr/bin/env python\n" + text, "utf-8")
    executable.chmod(0o755)
    readonly = special / "readonly_mode.py"
    readonly.write_text(text, "utf-8")
    readonly.chmod(0o444)  # the folder is writable: the fix replaces the file, keeping its mode
    (root / "clean.py").write_text("import torch\n\nx = torch.zeros(3)\n", "utf-8")


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("kill")
    original = base / "original"
    build_tree(original)
    fixed = base / "fixed"
    shutil.copytree(original, fixed)
    result = rnnlint_process(*FIX, "-j", "1", ".", cwd=fixed)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    before, after = snapshot(original), snapshot(fixed)
    assert before.keys() == after.keys()
    changed = [name for name in before if before[name][0] != after[name][0]]
    assert len(changed) >= 15  # the fix really writes most files: there is something to interrupt
    return base, before, after


def _run_and_kill(root: Path, writes: int, extra: float) -> int | None:
    """Start the fix, wait until ``writes`` files have been replaced, wait ``extra`` seconds, SIGKILL.

    Returns the exit code when the run finished before the kill, None when it was killed.
    """
    files = [p for p in root.rglob("*.py")]
    stamps = {p: p.stat().st_mtime_ns for p in files}
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnlint", *FIX, "-j", "1", "."], cwd=root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if sum(p.stat().st_mtime_ns != stamps[p] for p in files) >= writes:
            break
        time.sleep(0.005)
    try:
        proc.wait(timeout=extra)
        return proc.returncode  # finished before the kill
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and any worker processes, at once
        proc.wait()
        return None


def assert_each_file_whole(root: Path, before: dict, after: dict) -> tuple[int, int, list[str]]:
    now = snapshot(root)
    leftovers = []
    fixed = untouched = 0
    for name, (data, mode) in now.items():
        if name not in before:
            assert LEFTOVER.match(Path(name).name), f"unexpected file after the kill: {name}"
            leftovers.append(name)
            continue
        assert data in (before[name][0], after[name][0]), f"{name} is neither the original nor the fixed version"
        assert mode == before[name][1], f"{name}: mode changed"
        fixed += data != before[name][0]
        untouched += data == before[name][0] != after[name][0]
    assert before.keys() <= now.keys(), f"files lost: {sorted(before.keys() - now.keys())}"
    return fixed, untouched, leftovers


@pytest.mark.slow
def test_killed_fix_leaves_every_file_original_or_fully_fixed(trees):
    base, before, after = trees
    to_write = sum(before[name][0] != after[name][0] for name in before)
    rng = random.Random(1234)
    interrupted = 0
    for attempt in range(4):
        root = base / f"run{attempt}"
        shutil.copytree(base / "original", root)
        writes, extra = rng.randrange(to_write - 4), rng.uniform(0, 0.05)
        code = _run_and_kill(root, writes, extra)
        fixed, untouched, leftovers = assert_each_file_whole(root, before, after)
        interrupted += code is None
        print(f"attempt {attempt}: killed {extra:.2f} s after write {writes}: {fixed} files fixed, {untouched} untouched, "
              f"{len(leftovers)} temp files left")
        if attempt == 0:  # the next run finishes the job: every file ends fully fixed, stale temp files go
            for name in leftovers:
                os.utime(root / name, (time.time() - 3600, time.time() - 3600))
            again = rnnlint_process(*FIX, "-j", "1", ".", cwd=root)
            assert "Traceback" not in again.stderr
            assert snapshot(root) == after, f"attempt {attempt}: not fully fixed by a rerun"
        shutil.rmtree(root)
    assert interrupted >= 2, "the kills came after the run had finished: the test would prove nothing"


def test_stale_temp_files_are_removed_by_the_next_write_and_fresh_ones_kept(tmp_path):
    shutil.copy(SOURCES[0], tmp_path / "train.py")
    stale = tmp_path / ".train.py.abcd1234.rnnlint-tmp"
    stale.write_text("half a file")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = tmp_path / ".train.py.efgh5678.rnnlint-tmp"  # perhaps another run, writing right now
    fresh.write_text("being written")
    check = rnnlint("check", "--static", "--no-cache", ".", cwd=tmp_path)
    assert ".rnnlint-tmp" not in check.stdout + check.stderr  # never analysed as a source
    assert stale.exists()  # check writes nothing, deletes nothing
    result = rnnlint(*FIX, ".", cwd=tmp_path)
    assert result.returncode in (0, 1)
    assert not stale.exists() and fresh.exists()


@pytest.mark.slow  # a fix process killed with SIGKILL, then a second run
@pytest.mark.parametrize("moment", ["fsync", "replace"])
def test_killed_between_temp_file_and_rename(tmp_path, moment):
    """The worst moments, made certain: the process dies as it syncs the temp file or renames it."""
    for i, source in enumerate(SOURCES[:2]):
        shutil.copy(source, tmp_path / f"train_{i}.py")
    before = snapshot(tmp_path)
    # the rename is an exchange where the system has one (rnnlint.source._exchange), os.replace otherwise
    also = "import rnnlint.source as s; s._exchange = os.replace\n" if moment == "replace" else ""
    die = (f"import os, signal, sys\n"
           f"os.{moment} = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)\n"
           f"{also}"
           f"from rnnlint.cli import main\n"
           f"main([{', '.join(repr(a) for a in FIX)}, '-j', '1', '.'])\n")
    proc = subprocess.run([sys.executable, "-c", die], cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    now = snapshot(tmp_path)
    leftovers = sorted(name for name in now if name not in before)
    assert len(leftovers) == 1 and LEFTOVER.match(leftovers[0]), leftovers
    assert all(now[name] == before[name] for name in before)  # nothing replaced, nothing truncated
    # the next run: the leftover is not a source, the fix completes, the stale temp file goes
    os.utime(tmp_path / leftovers[0], (time.time() - 3600, time.time() - 3600))
    result = rnnlint(*FIX, ".", cwd=tmp_path)
    assert result.returncode in (0, 1) and ".rnnlint-tmp" not in result.stdout + result.stderr
    assert sorted(snapshot(tmp_path)) == sorted(before)
