"""Machine-readable output: JSON, SARIF 2.1.0 and GitHub workflow annotations.

SARIF is validated against the official OASIS SARIF 2.1.0 JSON schema
(``tests/data/sarif-schema-2.1.0.json``, the committee specification's
``sarif-schema-2.1.0.json``, JSON Schema draft-07), which is what GitHub code
scanning expects to upload.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from rnnlint.static import output
from rnnlint.diagnostics import Applicability, Diagnostic, Edit, Fix, Position, Severity
from rnnlint.static.registry import load_rules
from tests.helpers import rnnlint

DATA = Path(__file__).parent / "data"
SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8"))
JSON_KEYS = {"code", "name", "severity", "path", "line", "column", "end_line", "end_column", "message", "fix"}


def sarif_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("output")
    shutil.copy(DATA / "lstm_train.py", root / "train.py")
    # a name that needs escaping in URIs and annotations
    (root / "odd dir#1").mkdir()
    shutil.copy(DATA / "lstm_train.py", root / "odd dir#1" / "train,v2.py")
    (root / "broken.py").write_text("def train(:\n    pass\n")
    return root


def test_vendored_schema_is_the_official_one():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert SCHEMA["properties"]["version"]["enum"] == ["2.1.0"]
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    # and it does reject a broken log, so passing it means something
    assert sarif_errors({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]})


def test_json_output(project):
    result = rnnlint("check", "--output-format", "json", "--select", "RNN020,RNN041,RNN900", ".", cwd=project)
    assert result.returncode == 1
    items = json.loads(result.stdout)  # stdout is pure JSON: no summary line
    assert [(i["path"], i["line"], i["code"]) for i in items] == [
        ("broken.py", 1, "RNN900"),
        ("odd dir#1/train,v2.py", 12, "RNN041"),
        ("odd dir#1/train,v2.py", 22, "RNN020"),
        ("train.py", 12, "RNN041"),
        ("train.py", 22, "RNN020"),
    ]
    for item in items:
        assert JSON_KEYS <= set(item)
    by_code = {i["code"]: i for i in items if i["path"] == "train.py"}
    lr = by_code["RNN020"]
    assert (lr["name"], lr["severity"], lr["column"], lr["end_line"], lr["end_column"]) == (
        "high-learning-rate", "warning", 51, 22, 55)
    assert lr["fix"]["applicability"] == "unsafe"
    assert lr["fix"]["edits"] == [{"start": {"line": 22, "column": 51}, "end": {"line": 22, "column": 55},
                                   "content": "0.001"}]
    assert by_code["RNN041"]["fix"]["applicability"] == "safe"
    assert items[0]["fix"] is None


def test_json_output_with_no_findings_is_an_empty_list(tmp_path):
    (tmp_path / "ok.py").write_text("x = 1\n")
    result = rnnlint("check", "--output-format", "json", ".", cwd=tmp_path)
    assert (result.returncode, json.loads(result.stdout)) == (0, [])


def test_sarif_output_validates_against_the_official_schema(project):
    result = rnnlint("check", "--output-format", "sarif", "--select", "RNN020,RNN041,RNN900", ".", cwd=project)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert sarif_errors(document) == []
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert len(results) == 5
    for res in results:  # every result points at its rule descriptor
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"broken.py", "train.py", "odd%20dir%231/train%2Cv2.py"}
    fixed = [r for r in results if r.get("fixes")]
    assert {r["ruleId"] for r in fixed} == {"RNN020", "RNN041"}  # results with fixes are in the validated log
    lr = next(r for r in fixed if r["ruleId"] == "RNN020" and "odd" not in json.dumps(r["locations"]))
    replacement = lr["fixes"][0]["artifactChanges"][0]["replacements"][0]
    assert replacement == {
        "deletedRegion": {"startLine": 22, "startColumn": 51, "endLine": 22, "endColumn": 55},
        "insertedContent": {"text": "0.001"},
    }
    assert lr["level"] == "warning"


def test_sarif_without_findings_and_with_absolute_paths_validates(tmp_path):
    rules = load_rules()
    assert sarif_errors(json.loads(output.to_sarif([], rules))) == []
    outside = Diagnostic("RNN020", "high-learning-rate", Severity.WARNING, str(tmp_path / "a b.py"),
                         Position(1, 1), Position(1, 2), "msg",
                         Fix("f", Applicability.DISPLAY_ONLY, (Edit(Position(1, 1), Position(1, 2), ""),)))
    document = json.loads(output.to_sarif([outside], rules))
    assert sarif_errors(document) == []
    location = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": (tmp_path / "a b.py").as_uri()}


def test_github_annotations(project):
    result = rnnlint("check", "--output-format", "github", "--select", "RNN020,RNN900", ".", cwd=project)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(
        "::error file=broken.py,line=1,col=11,endLine=1,endColumn=11,title=RNN900 syntax-error::RNN900 ")
    # ',' and ':' in properties are escaped so the runner does not split the file name
    assert lines[1].startswith(
        "::warning file=odd dir#1/train%2Cv2.py,line=22,col=51,endLine=22,endColumn=55,"
        "title=RNN020 high-learning-rate::RNN020 Adam lr=0.05 is above 0.003")
    assert lines[2].startswith("::warning file=train.py,line=22,")


def test_github_escaping_of_messages():
    diagnostic = Diagnostic("RNN020", "high-learning-rate", Severity.WARNING, "a:b.py", Position(3, 4),
                            Position(3, 9), "100% wrong\nsecond line\r")
    assert output.to_github([diagnostic]) == (
        "::warning file=a%3Ab.py,line=3,col=4,endLine=3,endColumn=9,title=RNN020 high-learning-rate"
        "::RNN020 100%25 wrong%0Asecond line%0D"
    )


def test_value_chain_travels_as_related_locations(tmp_path):
    """An lr defined in a config module: JSON names the literal's file and line under ``related``, and
    SARIF carries it as a related location (schema-valid), so a code-scanning UI can link to it."""
    (tmp_path / "settings.py").write_text('CONFIG = {"optim": {"lr": 0.02}}\n')
    (tmp_path / "train.py").write_text(
        "import torch\nfrom torch import nn\nfrom settings import CONFIG\n\n"
        "model = nn.LSTM(8, 16)\n"
        'optimizer = torch.optim.Adam(model.parameters(), lr=CONFIG["optim"]["lr"])\n'
    )
    found = json.loads(rnnlint("check", "--static", "--no-cache", "--output-format", "json", "--select", "RNN020",
                               ".", cwd=tmp_path).stdout)
    assert [(d["path"], d["line"]) for d in found] == [("train.py", 6)]
    assert {"path": "settings.py", "line": 1} == {k: found[0]["related"][0][k] for k in ("path", "line")}
    document = json.loads(rnnlint("check", "--static", "--no-cache", "--output-format", "sarif", "--select",
                                  "RNN020", ".", cwd=tmp_path).stdout)
    assert sarif_errors(document) == []
    related = document["runs"][0]["results"][0]["relatedLocations"]
    assert related[0]["physicalLocation"]["artifactLocation"]["uri"] == "settings.py"
    assert related[0]["physicalLocation"]["region"]["startLine"] == 1


def test_a_message_names_another_file_as_the_location_is_written(tmp_path):
    """A project whose pyproject.toml lies below the working folder: a finding's location is written from the
    working folder, and so is the other file its message names (not from the project's root). Run from inside
    the project, both are written from there; the results cache serves each working folder its own spelling."""
    project = tmp_path / "sub"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.rnnlint]\n", "utf-8")
    (project / "settings.py").write_text("LEARNING_RATE = 0.01\n", "utf-8")
    (project / "train.py").write_text(
        "import torch\nfrom torch import nn\n\nfrom settings import LEARNING_RATE\n\nmodel = nn.LSTM(8, 16)\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)\n", "utf-8")
    above = rnnlint("check", "--static", "sub/", cwd=tmp_path).stdout
    assert "sub/train.py:7:53: RNN020" in above and "(LEARNING_RATE, sub/settings.py:1)" in above, above
    inside = rnnlint("check", "--static", ".", cwd=project).stdout  # the cache holds the findings of sub/ now
    assert "train.py:7:53: RNN020" in inside and "(LEARNING_RATE, settings.py:1)" in inside, inside
    assert rnnlint("check", "--static", "sub/", cwd=tmp_path).stdout == above
    # SARIF's related locations are written the same way
    sarif = json.loads(rnnlint("check", "--static", "--output-format", "sarif", "sub/", cwd=tmp_path).stdout)
    result = sarif["runs"][0]["results"][0]
    related = [r["physicalLocation"]["artifactLocation"]["uri"] for r in result.get("relatedLocations", [])]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "sub/train.py"
    assert related == ["sub/settings.py"]  # where the value is written
