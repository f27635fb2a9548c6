"""``rnnlint check --static`` never imports torch.

That is what keeps a pre-commit run on one file fast (importing torch alone
takes seconds) and what lets rnnlint lint projects whose torch is not installed
where the linter runs. The check runs the real command in a fresh interpreter
and inspects ``sys.modules`` after it, so an indirect import anywhere in the
static stage (engine, rules, project index) fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

DATA = Path(__file__).parent / "data"

WRAPPER = textwrap.dedent("""
    import json, runpy, sys
    sys.argv = ["rnnlint", *sys.argv[1:]]
    try:
        runpy.run_module("rnnlint", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exc:
        status = exc.code
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "lightning", "tensorflow"))
    print("@@" + json.dumps({"status": status, "heavy": heavy, "rnnlint": "rnnlint.cli" in sys.modules}))
""")


def run_wrapped(*args: str, cwd: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    marker = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    assert marker, result.stdout + result.stderr
    report = json.loads(marker[-1][2:])
    report["stdout"] = result.stdout
    return report


def test_static_check_of_a_training_project_never_imports_torch(tmp_path):
    # A small project: the model in a package, the training script importing it,
    # so that the project index follows imports across files.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("from .tagger import Tagger\n")
    (tmp_path / "models" / "tagger.py").write_text((DATA / "lstm_train.py").read_text())
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    (tmp_path / "run.py").write_text(textwrap.dedent("""\
        import torch
        from torch import optim
        from models import Tagger

        def main():
            model = Tagger(100, 5)
            opt = optim.RMSprop(model.parameters(), lr=0.5)
            for x, y in []:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        """))
    report = run_wrapped("check", "--static", "--no-cache", ".", cwd=tmp_path)
    assert report["rnnlint"]  # the command really ran in this interpreter
    assert report["status"] == 1  # and found what is there
    assert "run.py:7:" in report["stdout"] and "RNN020" in report["stdout"]
    assert report["heavy"] == []


def test_static_fix_never_imports_torch(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    report = run_wrapped("fix", "--apply", "--static", "--select", "RNN041", "train.py", cwd=tmp_path)
    assert report["status"] == 0
    assert "dropout=0.2" not in (tmp_path / "train.py").read_text()
    assert report["heavy"] == []


def test_the_wrapper_would_notice_torch(tmp_path):
    """The detection itself works: a run during which torch gets imported is caught.

    A stand-in ``torch`` module, imported at start-up, keeps this test fast.
    """
    (tmp_path / "torch.py").write_text("")
    (tmp_path / "sitecustomize.py").write_text("import torch\n")
    env_run = subprocess.run(
        [sys.executable, "-c", WRAPPER, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    marker = [line for line in env_run.stdout.splitlines() if line.startswith("@@")]
    assert marker, env_run.stdout + env_run.stderr
    assert "torch" in json.loads(marker[-1][2:])["heavy"]
