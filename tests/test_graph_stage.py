"""The graph stage end to end: the real ``rnnlint check`` on fixtures/graph/.

Each run is a subprocess, as a user runs it, through a small wrapper that also
tells whether the parent process imported torch (it must not: only the
child does) and how many processes it started. Fixture projects are copied to a temporary folder first, so a
model that misbehaved could not touch the repository. Expected findings
(file, code, line) were derived by hand from the fixture sources.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "graph"
WRAPPER = (
    "import subprocess, sys\n"
    "started = []\n"
    "popen = subprocess.Popen.__init__\n"
    "def counted(self, *args, **kwargs):\n"
    "    started.append(args)\n"
    "    popen(self, *args, **kwargs)\n"
    "subprocess.Popen.__init__ = counted\n"
    "from rnnlint.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "finally:\n"
    "    sys.stderr.write('\\nparent imported torch: %s\\n' % ('torch' in sys.modules))\n"
    "    sys.stderr.write('processes started: %d\\n' % len(started))\n"
)


def rnnlint(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=240, env={**os.environ, **(env or {})})
    assert "parent imported torch: False" in result.stderr, result.stderr
    return result


def copy(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path


def graph_findings(items: list[dict]) -> set[tuple[str, str, int]]:
    return {(Path(d["path"]).as_posix(), d["code"], d["line"]) for d in items if d["code"][3] in "19"}


@pytest.mark.slow
def test_seq2seq_findings_at_layer_lines_and_sarif_shape(tmp_path):
    """Composed from three files; the decoder loop defeats symbolic tracing (torch.export is used)."""
    root = copy(tmp_path, "seq2seq_bad", "hostile")
    # torch.export uses (and sets) an inductor cache folder; the user's own must not be written
    user_cache = tmp_path / "user-inductor-cache"
    result = rnnlint("check", "--graph", "--output-format", "sarif", "seq2seq_bad", cwd=root,
                     env={"TORCHINDUCTOR_CACHE_DIR": str(user_cache)})
    assert not user_cache.exists()
    assert result.returncode == 1, result.stderr
    sarif = json.loads(result.stdout)
    results = sarif["runs"][0]["results"]
    found = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["ruleId"],
              r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results}
    enc, dec = "seq2seq_bad/models/encoder.py", "seq2seq_bad/models/decoder.py"
    assert found == {
        (enc, "RNN103", 10), (dec, "RNN103", 12),  # normal_(std=1) in Seq2Seq.init_weights
        (enc, "RNN106", 10), (dec, "RNN106", 12),  # ... which saturates the gates on the probe batch
        (dec, "RNN107", 12),  # 1-layer bidirectional encoder state -> 2-layer decoder, unchanged
        (dec, "RNN101", 18),  # torch.tanh(output.squeeze(0)) inside the time-step loop
    }, [r["message"]["text"] for r in results if r["ruleId"] == "RNN901"]
    radius = next(r for r in results if r["ruleId"] == "RNN103")["message"]["text"]
    assert "spectral radius above 1.5" in radius and "orthogonal" in radius
    # identical in shape to a static finding's SARIF result
    static = rnnlint("check", "--static", "--output-format", "sarif", "hostile", cwd=root)
    static_result = json.loads(static.stdout)["runs"][0]["results"][0]
    for item in results:
        assert set(item) == set(static_result) - {"fixes"}
        assert set(item["locations"][0]["physicalLocation"]["region"]) == set(
            static_result["locations"][0]["physicalLocation"]["region"])
    rule_ids = {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert {"RNN101", "RNN107", "RNN901"} <= rule_ids


@pytest.mark.slow
def test_configured_arguments_build_the_model(tmp_path):
    """CharRNN(len(chars), HIDDEN) is not literal: [tool.rnnlint.models] gives the arguments."""
    root = copy(tmp_path, "char_rnn_bad")
    result = rnnlint("check", "--graph", "--output-format", "json", "char_rnn_bad", cwd=root)
    assert result.returncode == 1, result.stderr  # --graph asks for the graph stage, which finds these
    items = json.loads(result.stdout)
    assert graph_findings(items) == {
        ("char_rnn_bad/model.py", "RNN102", 11),  # nn.RNN(..., num_layers=2, nonlinearity="relu")
        ("char_rnn_bad/model.py", "RNN105", 12),  # nn.init.zeros_(self.proj.weight)
    }
    vanilla = next(d for d in items if d["code"] == "RNN102")
    assert vanilla["severity"] == "error" and "relu" in vanilla["message"]  # relu + depth (clipping present)
    # without the config: HIDDEN is literal at the call site, len(chars) is not -> a placeholder, said so
    (root / "char_rnn_bad" / "pyproject.toml").write_text("[tool.rnnlint]\n", "utf-8")
    result = rnnlint("check", "--graph", "--output-format", "json", "char_rnn_bad", cwd=root)
    items = json.loads(result.stdout)
    assert graph_findings(items) == {("char_rnn_bad/model.py", "RNN102", 11), ("char_rnn_bad/model.py", "RNN105", 12)}
    assert all("placeholder sizes vocab_size=20" in d["message"] for d in items)
    assert all("RNN(128 -> 128" in d["message"] or "Linear(128 -> 128)" in d["message"] for d in items)


@pytest.mark.slow
def test_clean_twins_are_quiet(tmp_path):
    root = copy(tmp_path, "seq2seq_clean", "char_rnn_clean")
    config = root / "char_rnn_clean" / "pyproject.toml"
    result = rnnlint("check", "--graph", "--config", str(config), "--output-format", "json", "seq2seq_clean",
                     "char_rnn_clean", cwd=root)
    assert json.loads(result.stdout) == [], result.stdout
    assert result.returncode == 0


def _running(name: str) -> list[str]:
    """Live (not zombie) processes whose name is ``name``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command, _, rest = text.partition(") ")
        if command.endswith(f"({name}") and not rest.startswith("Z"):
            found.append(stat.parent.name)
    return found


@pytest.mark.slow
def test_hostile_models_are_contained(tmp_path):
    """Endless __init__, sys.exit, 4 TiB, os._exit, file writes, processes: each is RNN901, and the run goes on."""
    root = copy(tmp_path, "hostile")
    # models.py only: hostile/escape and hostile/native are tests/test_containment.py's, and the
    # native ones are stopped only by the kernel's layers
    result = rnnlint("check", "--graph", "--output-format", "json", "hostile/models.py", cwd=root)
    assert result.returncode == 1, result.stderr
    items = json.loads(result.stdout)
    by_line = {d["line"]: d for d in items if d["code"] == "RNN901"}
    assert sorted(by_line) == [17, 25, 32, 39, 55, 65]
    assert "did not finish within 4 s" in by_line[17]["message"]
    assert "sys.exit('no GPU found, giving up')" in by_line[25]["message"]
    assert "more memory than the graph stage allows" in by_line[32]["message"]
    assert "died (exit code 3)" in by_line[39]["message"]
    scribbled = root / "hostile" / "SCRIBBLED"
    assert f"rnnlint blocked an attempt to write {scribbled}" in by_line[55]["message"]
    assert not scribbled.exists()
    # Spawner caught the refusal and was analysed; the attempt is still reported
    assert "`Spawner`, its code tried to start a subprocess; rnnlint blocked that" in by_line[65]["message"]
    assert all(d["severity"] == "info" for d in by_line.values())
    # the model after them was still built and analysed
    assert ("hostile/models.py", "RNN102", 49) in graph_findings(items)
    # Sneak forks through libc, which no audit hook sees: its child died with the child's process group
    if Path("/proc/self/stat").exists():
        assert _running("rnnlint-sneak") == []
    # the top-level training loop of models.py never ran
    assert not (root / "hostile" / "TRAINING_RAN").exists()
    assert not list((root / "hostile").rglob("__pycache__"))
    # graph findings have exactly the JSON shape of static ones (RNN001 is static)
    static = next(d for d in items if d["code"] == "RNN001")
    assert all(set(d) == set(static) for d in items)


@pytest.mark.slow  # the graph stage builds the models in a child process
def test_noqa_and_ignore_apply_to_graph_findings(tmp_path):
    root = copy(tmp_path, "char_rnn_bad")
    model = root / "char_rnn_bad" / "model.py"
    text = model.read_text("utf-8").replace('batch_first=True)', 'batch_first=True)  # noqa: RNN102')
    model.write_text(text, "utf-8")
    result = rnnlint("check", "--graph", "--output-format", "json", "--ignore", "RNN105", "char_rnn_bad", cwd=root)
    assert graph_findings(json.loads(result.stdout)) == set()
    assert result.returncode == 0


@pytest.mark.slow
def test_the_graph_stage_runs_only_when_asked(tmp_path):
    """Trust model: `check` runs no project code unless --graph or `graph = true` asks for it."""
    root = copy(tmp_path, "char_rnn_bad")
    marker = "note: 1 model not built by the graph stage (it runs project code); use --graph or graph = true"
    default = rnnlint("check", "char_rnn_bad", cwd=root)
    assert default.returncode == 0, default.stdout + default.stderr  # the static rules find nothing here
    assert marker in default.stderr
    assert default.stderr.count("note:") == 1
    static = rnnlint("check", "--static", "char_rnn_bad", cwd=root)
    assert static.returncode == 0 and "note:" not in static.stderr  # --static asked for no graph stage
    # --graph asking for it: test_configured_arguments_build_the_model (the same run, as JSON)
    config = root / "char_rnn_bad" / "pyproject.toml"
    config.write_text(config.read_text("utf-8").replace("[tool.rnnlint]\n", "[tool.rnnlint]\ngraph = true\n"), "utf-8")
    assert rnnlint("check", "char_rnn_bad", cwd=root).returncode == 1
    assert rnnlint("check", "--static", "char_rnn_bad", cwd=root).returncode == 0
    # CI on an untrusted pull request: the repository's own config cannot switch it on
    refused = rnnlint("check", "--no-project-code", "char_rnn_bad", cwd=root)
    assert refused.returncode == 0, refused.stdout + refused.stderr
    assert "--no-project-code: not running the graph stage enabled by" in refused.stderr
    both = rnnlint("check", "--graph", "--no-project-code", "char_rnn_bad", cwd=root)
    assert both.returncode == 2 and "--graph contradicts --no-project-code" in both.stderr


def test_invalid_model_config_is_a_usage_error(tmp_path):
    root = copy(tmp_path, "char_rnn_bad")
    (root / "char_rnn_bad" / "pyproject.toml").write_text(
        '[tool.rnnlint.models]\n"model:CharRNN" = { argz = [65] }\n', "utf-8")
    result = rnnlint("check", "--graph", "char_rnn_bad", cwd=root)
    assert result.returncode == 2
    assert "'model:CharRNN'" in result.stderr and "unknown key 'argz'" in result.stderr


def test_missing_torch_is_said_once(tmp_path, monkeypatch, capsys):
    from rnnlint.graph import stage
    from tests import helpers

    monkeypatch.setattr(stage, "torch_available", lambda: False)
    path = helpers.write_project(tmp_path, "import torch.nn as nn\nrnn = nn.LSTM(4, 8)\n")
    assert stage.run_graph_stage([path], helpers.session(tmp_path)).diagnostics == []
    assert capsys.readouterr().err.strip() == stage.TORCH_MISSING


@pytest.mark.slow  # the graph stage builds the models in a child process
def test_a_models_copy_leaves_what_it_inherited_out_of_its_collections(tmp_path):
    """Each model's copy freezes what it inherited (torch, the rules, the measurement code) before the model's
    code runs: the collections that code sets off walk only what it makes, and write nothing to the pages the
    copy shares with the child it was forked from. The model says what it saw in its error."""
    (tmp_path / "model.py").write_text(
        "import gc\nimport torch.nn as nn\n\n\n"
        "class Tagger(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.rnn = nn.LSTM(4, 8, batch_first=True)\n"
        "        raise RuntimeError(f'frozen {gc.get_freeze_count()}')\n",
        "utf-8",
    )
    result = rnnlint("check", "--graph", "--no-cache", ".", cwd=tmp_path)
    frozen = re.search(r"RuntimeError: frozen (\d+)", result.stdout)
    assert frozen is not None, result.stdout + result.stderr
    assert int(frozen.group(1)) > 100_000  # torch's own objects, at least


@pytest.mark.slow  # the graph stage builds the models in a child process
def test_a_model_that_cannot_be_built_is_a_note_not_a_failure(tmp_path):
    """RNN901 is information: rnnlint says what it could not analyse, but the build stays green."""
    (tmp_path / "model.py").write_text(
        "import torch.nn as nn\n\n\n"
        "class Tagger(nn.Module):\n"
        "    def __init__(self, vocab_file):\n"
        "        super().__init__()\n"
        "        words = open(vocab_file).read().split()\n"
        "        self.emb = nn.Embedding(len(words), 32)\n"
        "        self.rnn = nn.LSTM(32, 64, batch_first=True)\n",
        "utf-8",
    )
    result = rnnlint("check", "--graph", "--no-cache", ".", cwd=tmp_path)
    assert "RNN901" in result.stdout, result.stdout + result.stderr
    assert "note" in result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_to_build_costs_nothing(tmp_path):
    """--graph on code without a recurrent model: no child process, no torch, and the summary says why."""
    (tmp_path / "train.py").write_text(
        "import torch.nn as nn\n\n\n"
        "class Classifier(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv1d(4, 8, 3)\n",
        "utf-8",
    )
    result = rnnlint("check", "--graph", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "processes started: 0" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "No findings; graph stage: no models to build."


@pytest.mark.slow  # the graph stage builds the models in a child process
def test_constructor_arguments_from_the_training_script(tmp_path):
    """Word-model shape: the layer kind and sizes are argparse defaults of train.py, passed to model.py's class.

    The model's module imports matplotlib (whose font cache set-up writes a config folder and asks for a
    subprocess): it builds all the same and nothing is blamed on the model. The summary line tells the stage's time.
    """
    (tmp_path / "model.py").write_text(
        "import matplotlib.pyplot as plt\n"
        "import torch.nn as nn\n\n\n"
        "class WordModel(nn.Module):\n"
        "    def __init__(self, cell, n_words, emb_dim, width, depth, drop=0.2):\n"
        "        super().__init__()\n"
        "        self.embed = nn.Embedding(n_words, emb_dim)\n"
        "        if cell == \"gru\":\n"
        "            self.core = nn.GRU(emb_dim, width, depth, dropout=drop)\n"
        "        else:\n"
        "            self.core = nn.RNN(emb_dim, width, depth, nonlinearity=cell, dropout=drop)\n"
        "        self.head = nn.Linear(width, n_words)\n\n"
        "    def forward(self, tokens):\n"
        "        states, _ = self.core(self.embed(tokens))\n"
        "        return self.head(states)\n\n\n"
        "def plot(losses):\n"
        "    plt.plot(losses)\n",
        "utf-8",
    )
    (tmp_path / "train.py").write_text(
        "import argparse\n\n"
        "from model import WordModel\n\n"
        "options = argparse.ArgumentParser()\n"
        "options.add_argument(\"--cell\", default=\"relu\", help=\"gru, tanh or relu\")\n"
        "options.add_argument(\"--emb\", type=int, default=24)\n"
        "options.add_argument(\"--width\", type=int, default=24)\n"
        "options.add_argument(\"--depth\", type=int, default=3)\n"
        "cfg = options.parse_args()\n\n"
        "words = sorted(set(open(\"corpus.txt\").read().split()))\n"
        "net = WordModel(cfg.cell, len(words), cfg.emb, cfg.width, cfg.depth)\n",
        "utf-8",
    )
    result = rnnlint("check", "--graph", "--no-cache", ".", cwd=tmp_path)
    lines = result.stdout.strip().splitlines()
    assert [line.split(" ")[:2] for line in lines[:-1]] == [["model.py:12:13:", "RNN102"]], result.stdout
    assert "RNN(24 -> 24, 3 layers)" in lines[0] and "relu" in lines[0]
    assert "placeholder sizes n_words=20" in lines[0]  # len(words) is known only when it runs
    assert re.fullmatch(r"1 finding, .*; graph stage: 1 model built in \d+\.\d s\.", lines[-1]), lines[-1]
    assert not (tmp_path / "matplotlib").exists() and not list(tmp_path.rglob("fontlist*"))


@pytest.mark.slow  # the graph stage builds the models in a child process
def test_a_model_defined_in_a_notebook_is_built_with_its_cells_arguments(tmp_path):
    """The class in one cell, its size in another, the call in a third: built, reported by cell; no training cell runs."""
    cells = [
        "%matplotlib inline\nimport torch.nn as nn\n",
        "HIDDEN = 32\n",
        "class Net(nn.Module):\n"
        "    def __init__(self, width, layers):\n"
        "        super().__init__()\n"
        "        self.rnn = nn.RNN(4, width, layers, nonlinearity=\"relu\")\n\n"
        "    def forward(self, x):\n"
        "        return self.rnn(x)[0]\n",
        "net = Net(HIDDEN, layers=3)\nopen(\"TRAINING_RAN\", \"w\").close()\n",
    ]
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                           "source": cell.splitlines(keepends=True)} for cell in cells],
                "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "explore.ipynb").write_text(json.dumps(notebook), "utf-8")
    result = rnnlint("check", "--graph", "--no-cache", "--output-format", "json", ".", cwd=tmp_path)
    items = [d for d in json.loads(result.stdout) if d["code"][3] in "19"]
    assert [(d["code"], d["cell"], d["line"]) for d in items] == [("RNN102", 3, 4)], result.stdout
    assert "RNN(4 -> 32, 3 layers)" in items[0]["message"] and "placeholder" not in items[0]["message"]
    assert not (tmp_path / "TRAINING_RAN").exists()


@pytest.mark.slow  # the graph stage's child imports torch and TorchDynamo
def test_once_two_models_needed_torch_export_the_next_models_copy_starts_with_it(tmp_path):
    """A model that symbolic tracing cannot follow (a loop over its input's length) is traced by torch.export,
    which imports TorchDynamo, SymPy and NetworkX (1.5 s). Each model is analysed in a copy forked from the
    child: after two such models the child imports them itself, so the next model's copy does not."""
    import tempfile

    from rnnlint.graph import stage
    from rnnlint.graph.stage import run_graph_stage
    from tests import helpers

    stepper = (
        "class {name}(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        print('{name} built with TorchDynamo imported:', 'torch._dynamo' in sys.modules, file=sys.stderr)\n"
        "        self.cell = nn.GRUCell(8, 16)\n\n"
        "    def forward(self, x):\n"
        "        h = torch.zeros(x.shape[0], 16)\n"
        "        for t in range(x.shape[1]):\n"
        "            h = self.cell(x[:, t], h)\n"
        "        return h\n\n\n"
    )
    helpers.write_project(tmp_path, "import sys\n\nimport torch\nimport torch.nn as nn\n\n\n"
                          + "".join(stepper.format(name=name) for name in ("First", "Second", "Third")))
    printed = []

    def child_with_its_stderr(request: dict, model_timeout: float, stage_timeout: float) -> dict:
        with tempfile.TemporaryDirectory() as scratch:
            request = {**request, "scratch": scratch}
            child = subprocess.run(stage._child_command(), input=json.dumps(request), capture_output=True, text=True,
                                   cwd=request["roots"][0], env=stage._child_env(scratch), timeout=200)
        printed.append(child.stderr)
        results = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
        assert [r["graph"] for r in results if r.get("event") == "result"] == ["export"] * 3, child.stderr
        return {}

    run_graph_stage(sorted(tmp_path.rglob("*.py")), helpers.session(tmp_path), executor=child_with_its_stderr)
    built = [line for line in printed[0].splitlines() if "built with TorchDynamo" in line]
    assert built == ["First built with TorchDynamo imported: False", "Second built with TorchDynamo imported: False",
                     "Third built with TorchDynamo imported: True"]
