"""The results cache: a warm ``check`` reuses findings, and nothing stale is ever served.

In-process tests build a fresh :class:`Session` per "run" (as each CLI process
does) and count how often the analysis really ran; the command-line tests run
the real command line (in this process; in a subprocess where the process's
environment or its workers are the subject).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rnnlint.static.runner as runner
from rnnlint.static import output
from rnnlint.config import load_config
from rnnlint.static.runner import Session
from tests.helpers import rnnlint, rnnlint_process

DATA = Path(__file__).parent / "data"

MODEL = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.core = nn.LSTM(32, 64, batch_first=True)
        self.head = nn.Linear(64, 10)
"""

TRAIN = """\
import torch
from torch import optim

from models.net import Net


def train(loader):
    model = Net()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("", "utf-8")
    (tmp_path / "models" / "net.py").write_text(MODEL, "utf-8")
    (tmp_path / "train.py").write_text(TRAIN, "utf-8")
    (tmp_path / "tagger.py").write_text((DATA / "lstm_train.py").read_text("utf-8"), "utf-8")
    (tmp_path / "pyproject.toml").write_text("[tool.rnnlint]\n", "utf-8")
    return tmp_path


@pytest.fixture
def analysed(monkeypatch) -> list[str]:
    """Names of the files really analysed (cache misses), in order."""
    calls: list[str] = []
    real = runner.analyse

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(runner, "analyse", counting)
    return calls


def check(root: Path, *names: str, use_cache: bool = True, select: tuple[str, ...] | None = None) -> dict:
    """One run, as a fresh process would do it: {file name: [(code, line)]}."""
    config = load_config([root])
    if select is not None:
        from dataclasses import replace

        config = replace(config, select=select)
    session = Session(config, use_cache=use_cache)
    found = {}
    for name in names or ("train.py", "tagger.py"):
        found[name] = [(d.code, d.line) for d in session.check(root / name).diagnostics]
    return found


def test_warm_run_serves_every_file_from_the_cache(project, analysed):
    cold = check(project)
    assert analysed == ["train.py", "tagger.py"]
    assert ("RNN001", 14) in cold["train.py"]
    analysed.clear()
    assert check(project) == cold
    assert analysed == []


def test_cached_findings_print_byte_identical_in_every_format(project):
    fresh = Session(load_config([project]), use_cache=False)
    cold = Session(load_config([project]))
    for name in ("train.py", "tagger.py"):
        cold.check(project / name)  # fill the cache
    warm = Session(load_config([project]))
    expected = [d for n in ("train.py", "tagger.py") for d in fresh.check(project / n).diagnostics]
    served = [d for n in ("train.py", "tagger.py") for d in warm.check(project / n).diagnostics]
    assert any(d.fix is not None for d in served), "the test needs a finding with a fix"
    assert served == expected
    assert output.to_json(served) == output.to_json(expected)
    assert output.to_sarif(served, warm.rules) == output.to_sarif(expected, fresh.rules)
    assert output.to_github(served) == output.to_github(expected)
    assert [output.text_line(d, False) for d in served] == [output.text_line(d, False) for d in expected]


def test_notebooks_are_cached_by_cell_like_source_files(project, analysed):
    notebook = Path(__file__).parents[1] / "fixtures" / "notebook" / "lstm_training.ipynb"
    (project / "nb.ipynb").write_bytes(notebook.read_bytes())
    fresh = Session(load_config([project]), use_cache=False).check(project / "nb.ipynb").diagnostics
    assert fresh and all(d.cell is not None for d in fresh), "the test needs findings located by cell"
    Session(load_config([project])).check(project / "nb.ipynb")  # fill the cache
    analysed.clear()
    served = Session(load_config([project])).check(project / "nb.ipynb").diagnostics
    assert analysed == []
    assert served == fresh
    assert output.to_json(served) == output.to_json(fresh)


def test_editing_the_file_invalidates_its_entry(project, analysed):
    assert ("RNN001", 14) in check(project)["train.py"]
    text = TRAIN.replace(
        "        optimizer.step()",
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n        optimizer.step()",
    )
    (project / "train.py").write_text(text, "utf-8")
    analysed.clear()
    assert check(project)["train.py"] == []
    assert analysed == ["train.py"]  # tagger.py still served from the cache


def test_editing_the_imported_model_file_invalidates_the_training_script(project, analysed):
    assert ("RNN001", 14) in check(project)["train.py"]
    # no longer a recurrent model: the training script has nothing to report
    (project / "models" / "net.py").write_text(MODEL.replace("nn.LSTM(32, 64, batch_first=True)", "nn.Linear(32, 64)"))
    analysed.clear()
    assert check(project)["train.py"] == []
    assert analysed == ["train.py"]
    # an edit that keeps the model recurrent brings the finding back
    (project / "models" / "net.py").write_text(MODEL.replace("nn.LSTM(", "nn.GRU("))
    assert ("RNN001", 14) in check(project)["train.py"]


def test_creating_a_module_an_import_now_resolves_to_invalidates(project, analysed):
    (project / "models" / "net.py").unlink()
    assert check(project, "train.py")["train.py"] == []
    (project / "models" / "net.py").write_text(MODEL)
    analysed.clear()
    assert ("RNN001", 14) in check(project, "train.py")["train.py"]
    assert analysed == ["train.py"]


def test_an_unrelated_file_does_not_invalidate(project, analysed):
    check(project)
    (project / "models" / "other.py").write_text("X = 1\n")
    (project / "README.md").write_text("hello\n")
    analysed.clear()
    check(project)
    assert analysed == []


def test_changing_a_rule_option_in_pyproject_invalidates(project, analysed):
    assert ("RNN020", 22) in check(project)["tagger.py"]  # lr=0.05 > 3e-3
    (project / "pyproject.toml").write_text("[tool.rnnlint.high-learning-rate]\nadam = 0.1\n", "utf-8")
    analysed.clear()
    assert "RNN020" not in {code for code, _ in check(project)["tagger.py"]}
    assert sorted(analysed) == ["tagger.py", "train.py"]


def test_select_change_uses_separate_entries(project, analysed):
    only_020 = check(project, "tagger.py", select=("RNN020",))["tagger.py"]
    only_041 = check(project, "tagger.py", select=("RNN041",))["tagger.py"]
    assert only_020 == [("RNN020", 22)]
    assert only_041 == [("RNN041", 12)]
    analysed.clear()
    assert check(project, "tagger.py", select=("RNN020",))["tagger.py"] == only_020
    assert check(project, "tagger.py", select=("RNN041",))["tagger.py"] == only_041
    assert analysed == []


def test_editing_a_project_rule_invalidates(project, analysed):
    folder = project / "lint_rules"
    folder.mkdir()
    (folder / "placeholder.py").write_text("# no rules yet\n")
    (project / "pyproject.toml").write_text(f'[tool.rnnlint]\nrule-folders = ["{folder}"]\n', "utf-8")
    check(project)
    (folder / "placeholder.py").write_text("# still no rules, but the pack's source changed\n")
    analysed.clear()
    check(project)
    assert sorted(analysed) == ["tagger.py", "train.py"]


def test_corrupt_or_partial_entries_are_misses(project, analysed):
    cold = check(project)
    entries = sorted((project / ".rnnlint_cache").glob("check-*/*.json"))
    assert len(entries) == 2
    entries[0].write_bytes(b'{"digest": "')  # cut short
    entries[1].write_text(json.dumps({"digest": 3, "deps": [], "diagnostics": {"x": 1}}))  # wrong shape
    analysed.clear()
    assert check(project) == cold
    assert sorted(analysed) == ["tagger.py", "train.py"]
    analysed.clear()
    assert check(project) == cold  # rewritten: served again
    assert analysed == []


def _entry(file: Path) -> tuple[bytes, dict]:
    """A sealed entry's header and its JSON (see rnnlint.seal)."""
    header, _, payload = file.read_bytes().partition(b"\n")
    return header, json.loads(payload)


def test_an_entry_edited_to_hide_findings_is_a_miss(project):
    """A pull request that commits `.rnnlint_cache/` with "diagnostics": [] hides nothing."""
    rnnlint("check", "--static", "--exit-zero", "tagger.py", cwd=project)
    entries = list((project / ".rnnlint_cache").glob("check-*/*.json"))
    assert entries
    for entry in entries:
        header, data = _entry(entry)
        data["diagnostics"] = []
        entry.write_bytes(header + b"\n" + json.dumps(data).encode())  # the seal no longer matches
    result = rnnlint("check", "--static", "tagger.py", cwd=project)
    assert result.returncode == 1 and "RNN041" in result.stdout
    # nor does an unsealed entry, nor one sealed for another file (moved)
    for entry in entries:
        entry.write_text(json.dumps({"digest": "x", "deps": {}, "diagnostics": []}))
    assert rnnlint("check", "--static", "tagger.py", cwd=project).returncode == 1
    rnnlint("check", "--static", "--exit-zero", ".", cwd=project)
    others = sorted((project / ".rnnlint_cache").glob("check-*/*.json"))
    blobs = {f: f.read_bytes() for f in others}
    for f in others:  # swap the two files' entries
        f.write_bytes(blobs[others[1 - others.index(f)]])
    result = rnnlint("check", "--static", "--output-format", "json", ".", cwd=project)
    assert {d["path"] for d in json.loads(result.stdout)} == {"train.py", "tagger.py"}
    # the key that seals entries is the user's, outside the checked tree
    from rnnlint import seal

    assert project.resolve() not in seal.key_file().resolve().parents


def test_sealed_entries_of_the_wrong_shape_are_misses(project, analysed):
    """Valid seal, wrong content (an older rnnlint, a bug): a miss, never a crash."""
    from rnnlint import seal

    cold = check(project)
    entries = sorted((project / ".rnnlint_cache").glob("check-*/*.json"))
    summaries = sorted((project / ".rnnlint_cache").glob("index-*/*.json"))
    assert entries and summaries
    good = _entry(entries[0])[1]
    first_finding = next(e for e in entries if _entry(e)[1]["diagnostics"])
    broken = dict(_entry(first_finding)[1])
    broken["diagnostics"] = [dict(broken["diagnostics"][0], line="3")]  # a string where a number belongs
    for file, payload in [
        (entries[0], b"[" * 100_000 + b"]" * 100_000),  # RecursionError in the parser
        (entries[1], json.dumps(dict(good, deps=["x"])).encode()),
        (first_finding, json.dumps(broken).encode()),
    ] + [(f, json.dumps({"imports": {"a": 1}, "star_modules": [], "definitions": {}}).encode()) for f in summaries]:
        file.write_bytes(seal.seal(file.name, payload))
    analysed.clear()
    assert check(project) == cold
    assert sorted(analysed) == ["tagger.py", "train.py"]


def test_no_cache_writes_nothing(project):
    result = rnnlint("check", "--static", "--no-cache", ".", cwd=project)
    assert result.returncode == 1, result.stderr
    assert not (project / ".rnnlint_cache").exists()


@pytest.mark.slow  # a pool of workers
def test_no_cache_writes_nothing_on_a_tree_large_enough_for_workers(project):
    """Workers check the files; the parent's session still answers the graph stage's note: neither writes."""
    for i in range(runner.PARALLEL_THRESHOLD):
        (project / f"train_{i}.py").write_text(TRAIN, "utf-8")
    result = rnnlint_process("check", "--no-cache", "--jobs", "2", ".", cwd=project)
    assert result.returncode == 1, result.stderr
    assert not (project / ".rnnlint_cache").exists()


def test_warm_cli_run_from_another_directory_prints_identical_json(project):
    args = ("check", "--static", "--output-format", "json")
    cold = rnnlint(*args, ".", cwd=project)
    assert (project / ".rnnlint_cache" / ".gitignore").is_file()
    warm = rnnlint(*args, ".", cwd=project)
    assert cold.returncode == warm.returncode == 1
    assert warm.stdout == cold.stdout
    # the display path is recomputed for the current directory, not taken from the cache
    elsewhere = rnnlint(*args, project.name, cwd=project.parent)
    paths = {d["path"] for d in json.loads(elsewhere.stdout)}
    assert paths == {f"{project.name}/train.py", f"{project.name}/tagger.py"}


@pytest.mark.slow  # two runs, each with a pool of workers
def test_two_concurrent_checks_agree(project):
    packages = runner.PARALLEL_THRESHOLD // 2  # two files each: just enough files for the worker pool
    for i in range(packages):
        (project / "pkg" / f"m{i}").mkdir(parents=True)
        (project / "pkg" / f"m{i}" / "train.py").write_text(TRAIN)
        (project / "pkg" / f"m{i}" / "tagger.py").write_text((project / "tagger.py").read_text())
    command = [sys.executable, "-m", "rnnlint", "check", "--static", "--output-format", "json", "."]
    procs = [subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [1, 1], results[0][1] + results[1][1]
    assert results[0][0] == results[1][0]
    assert len(json.loads(results[0][0])) > 2 * packages
    assert not list((project / ".rnnlint_cache").rglob("*.tmp"))
    warm = rnnlint("check", "--static", "--output-format", "json", ".", cwd=project)
    assert warm.stdout == results[0][0]


@pytest.mark.slow  # worker pools
def test_a_warm_run_of_a_large_unchanged_tree_analyses_nothing_and_prints_what_the_cold_run_did(project, monkeypatch):
    """A tree large enough for workers, with findings and a syntax error: the warm run settles every file
    from the cache (on the workers it forks), so libcst is never asked again, and prints the same."""
    for i in range(runner.PARALLEL_THRESHOLD):
        (project / f"train_{i}.py").write_text(TRAIN, "utf-8")
    (project / "broken.py").write_text("def f(:\n    pass\n", "utf-8")
    args = ("check", "--static", "--jobs", "2", "--output-format", "json", ".")
    cold = rnnlint(*args, cwd=project)
    assert cold.returncode == 1, cold.stderr
    assert {d["code"] for d in json.loads(cold.stdout)} >= {"RNN001", "RNN900"}

    def analysed(path, *rest, **kwargs):
        raise AssertionError(f"{path} was analysed again")

    monkeypatch.setattr(runner, "analyse", analysed)  # the workers are forked: they see it too
    warm = rnnlint(*args, cwd=project)
    assert "internal error" not in warm.stdout + warm.stderr
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout)


def test_dependencies_are_recorded_when_the_index_answers_from_its_memo(project, analysed):
    # train.py and second.py both use Net, whose LSTM lives in its base class in
    # another file; second.py's question is answered from the index's memo.
    (project / "models" / "base.py").write_text(MODEL.replace("class Net", "class Base"))
    (project / "models" / "net.py").write_text("from models.base import Base\n\n\nclass Net(Base):\n    pass\n")
    (project / "second.py").write_text(TRAIN + "\n# a second training script\n")
    assert ("RNN001", 14) in check(project, "train.py", "second.py")["second.py"]
    (project / "models" / "base.py").write_text(MODEL.replace("class Net", "class Base").replace("nn.LSTM(", "nn.Conv1d("))
    analysed.clear()
    assert check(project, "train.py", "second.py") == {"train.py": [], "second.py": []}
    assert analysed == ["train.py", "second.py"]


def test_cache_dir_naming_an_existing_folder_gets_no_gitignore(project):
    """A config's `cache-dir = ".."` must not hide the parent folder from git with a `*` .gitignore."""
    shared = project / "shared"
    shared.mkdir()
    (project / "pyproject.toml").write_text('[tool.rnnlint]\ncache-dir = "shared"\n', "utf-8")
    assert rnnlint("check", "--static", ".", cwd=project).returncode == 1
    assert list(shared.glob("check-*/*.json")) and not (shared / ".gitignore").exists()
    (project / "pyproject.toml").write_text('[tool.rnnlint]\ncache-dir = "fresh"\n', "utf-8")
    rnnlint("check", "--static", ".", cwd=project)
    assert (project / "fresh" / ".gitignore").is_file()  # one rnnlint made: marked as safe to delete


def test_no_cache_is_trusted_when_the_key_would_live_in_the_checked_tree(project):
    """XDG_CACHE_HOME inside a CI workspace: a pull request could commit a key and entries sealed with it."""
    env = {"XDG_CACHE_HOME": str(project / ".cache")}
    result = rnnlint_process("check", "--static", ".", cwd=project, env=env)
    assert result.returncode == 1, result.stderr
    assert not (project / ".rnnlint_cache").exists()


def test_the_workers_count_the_models_of_the_files_they_analyse_for_checks_note(project, monkeypatch):
    """Without --static, check notes how many models --graph would build. On a tree large enough for workers,
    each worker counts the models of the files it analyses (it holds their trees), and the note is the one a
    single process prints; the run's own process parses none of those files again."""
    for i in range(runner.PARALLEL_THRESHOLD):
        (project / "models" / f"net_{i}.py").write_text(MODEL.replace("class Net", f"class Net{i}"), "utf-8")
    alone = rnnlint("check", "--no-cache", "--jobs", "1", ".", cwd=project)
    note = f"note: {runner.PARALLEL_THRESHOLD + 2} models not built by the graph stage"  # with net.py, tagger.py
    assert note in alone.stderr, alone.stderr

    from rnnlint.graph import finder

    parent, found = os.getpid(), finder.ModelFinder.__init__

    def made(self, session):
        assert os.getpid() != parent, "the run's own process counted models again"
        found(self, session)

    monkeypatch.setattr(finder.ModelFinder, "__init__", made)  # the workers are forked: they see it too
    both = rnnlint("check", "--no-cache", "--jobs", "2", ".", cwd=project)
    assert both.stderr == alone.stderr and both.stdout == alone.stdout
