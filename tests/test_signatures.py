"""The recorded recurrent-module signatures agree with the installed torch.

RNN040 and RNN041 read ``rnnlint/data/recurrent_signatures.json`` instead of
importing torch. These tests build real modules to check every fact they
rely on: each recorded keyword is accepted, names that are not recorded raise,
the positional order puts each value where the rules think it goes, and the
positional limit is exact. When torch changes, re-run
``python tests/tools/record_signatures.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from rnnlint.signatures import signatures

torch = pytest.importorskip("torch")

SIGNATURES = signatures()
NAMES = sorted(SIGNATURES)
BOGUS = ("peephole", "activation", "recurrent_dropout", "return_sequences", "units", "nonlinearity", "proj_size")
REBUILD = "re-run tests/tools/record_signatures.py"


def _cls(qualname: str):
    return getattr(torch.nn, qualname.rsplit(".", 1)[-1])


def _distinct_values(qualname: str) -> dict:
    """A value per parameter that differs from its default, so its landing place shows."""
    return {
        "input_size": 2, "hidden_size": 3, "num_layers": 2, "nonlinearity": "relu", "bias": False,
        "batch_first": True, "dropout": 0.25, "bidirectional": True,
        "proj_size": 1 if qualname == "torch.nn.LSTM" else 0, "device": None, "dtype": torch.float64,
    }


def test_record_is_for_the_installed_torch():
    import json
    from importlib import resources

    data = json.loads(resources.files("rnnlint").joinpath("data", "recurrent_signatures.json").read_text("utf-8"))
    assert data["torch_version"] == torch.__version__.split("+")[0], REBUILD
    assert set(SIGNATURES) == {f"torch.nn.{n}" for n in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")}


@pytest.mark.filterwarnings("ignore:dropout option adds dropout")
@pytest.mark.parametrize("qualname", NAMES)
def test_every_recorded_keyword_is_accepted(qualname):
    signature = SIGNATURES[qualname]
    values = _distinct_values(qualname)
    for keyword in sorted(signature.keywords):
        kwargs = {"input_size": 2, "hidden_size": 3, keyword: values[keyword]}
        _cls(qualname)(**kwargs)  # raises if torch no longer accepts it


@pytest.mark.parametrize("qualname", NAMES)
def test_names_not_recorded_are_rejected(qualname):
    signature = SIGNATURES[qualname]
    for keyword in BOGUS:
        if keyword in signature.keywords:
            continue
        with pytest.raises((TypeError, ValueError)) as raised:
            _cls(qualname)(2, 3, **{keyword: 1})
        if keyword in signature.rejected:  # the rule quotes torch's own error
            assert signature.rejected[keyword] == f"{type(raised.value).__name__}: {raised.value}", REBUILD
        else:
            assert raised.type is TypeError, f"{qualname}({keyword}=...) no longer raises TypeError; {REBUILD}"


def test_expected_facts_of_the_pinned_torch():
    """The facts users meet most often, spelled out (peephole never existed)."""
    lstm, gru, rnn = (SIGNATURES[f"torch.nn.{n}"] for n in ("LSTM", "GRU", "RNN"))
    assert "proj_size" in lstm.keywords and "proj_size" not in gru.keywords
    assert "nonlinearity" in rnn.keywords and "nonlinearity" not in lstm.keywords
    assert not any("peephole" in s.keywords for s in SIGNATURES.values())
    assert lstm.positional.index("dropout") == 5 and rnn.positional.index("dropout") == 6
    assert lstm.defaults["num_layers"] == 1 and lstm.defaults["dropout"] == 0.0


@pytest.mark.parametrize("qualname", NAMES)
def test_positional_order_matches_the_runtime(qualname):
    signature = SIGNATURES[qualname]
    values = _distinct_values(qualname)
    module = _cls(qualname)(*[values[name] for name in signature.positional])
    for name in signature.positional:
        if name == "dtype":
            weight = getattr(module, "weight_ih_l0", None)
            weight = weight if weight is not None else module.weight_ih
            assert weight.dtype == torch.float64, f"{qualname}: dtype is not where recorded"
        elif name != "device":
            assert getattr(module, name) == values[name], f"{qualname}: {name} is not where recorded; {REBUILD}"


@pytest.mark.parametrize("qualname", NAMES)
def test_positional_limit_is_exact(qualname):
    signature = SIGNATURES[qualname]
    values = _distinct_values(qualname)
    args = [values[name] for name in signature.positional]
    with pytest.raises(TypeError):
        _cls(qualname)(*args, None)
    with pytest.raises(TypeError):  # and the required ones are required
        _cls(qualname)(*args[: len(signature.required) - 1])


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_dropout_on_one_layer_does_nothing_but_warn(name):
    """What RNN041 claims, and why removing the argument is a safe fix."""
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        with_dropout = getattr(torch.nn, name)(4, 5, dropout=0.5)
    without = getattr(torch.nn, name)(4, 5)
    without.load_state_dict(with_dropout.state_dict())
    with_dropout.train()
    without.train()
    x = torch.randn(7, 3, 4)
    assert torch.equal(with_dropout(x)[0], without(x)[0])


def test_reading_signatures_does_not_import_torch():
    code = (
        "import sys\n"
        "from rnnlint.signatures import signatures\n"
        "assert signatures()['torch.nn.LSTM'].positional[2] == 'num_layers'\n"
        "assert 'torch' not in sys.modules, 'the static stage imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
