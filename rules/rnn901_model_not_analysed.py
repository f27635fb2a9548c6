from rnnlint.diagnostics import Severity
from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid, Option


class ModelNotAnalysed(GraphRule):
    """The graph stage could not build, trace or run a model.

    **What it catches.** A model the graph stage found but could not analyse,
    and why: its constructor needs arguments that the project's own call of it
    does not resolve to one literal each (the call site is named, with each
    argument it could not follow; arguments are followed through argparse
    defaults, config dicts, constants of other files; sizes named like
    ``vocab_size`` or ``hidden_dim`` get small placeholder values instead, and
    the findings say so), a library it imports is missing or of another
    version than the project needs, ``__init__`` raised, called ``sys.exit``,
    did not finish within ``model-timeout`` seconds, allocated beyond
    ``memory-limit-mb``, or killed its process; or the model was built but no
    graph could be traced and no probe batch could run, so some rules saw its
    parameters only (the message then gives an input template of the kind its
    first layer takes). The message says what would let rnnlint build it.

    **Why it matters.** A model that is not analysed gets no RNN1xx
    findings: silence would look like a clean bill of health.

    **Example.**

        class Seq2Seq(nn.Module):           # RNN901: needs arguments (config)
            def __init__(self, config): ...

        # pyproject.toml
        [tool.rnnlint.models]
        "models.seq2seq:Seq2Seq" = { args = [1000, 256] }
        "models.tagger:Tagger" = { factory = "models.tagger:build" }
        "models.lm:LM" = { inputs = [{ shape = [4, 20], dtype = "int64", high = 1000 }] }
        "models.huge:Huge" = { skip = true }

    **Fix safety.** Nothing to fix in the code: add the configuration the
    message suggests, or ignore RNN901.

    **Options.** ``model-timeout`` (seconds to build and analyse one model),
    ``stage-timeout`` (seconds for the whole graph stage), ``memory-limit-mb``
    (address space the child process may add after importing torch).
    """

    code = "RNN901"
    name = "model-not-analysed"
    severity = Severity.INFO
    options = {
        "model-timeout": Option(30.0, "seconds allowed to build and analyse one model",
                                minimum=0, exclusive_minimum=True, maximum=86400),
        "stage-timeout": Option(300.0, "seconds allowed for the whole graph stage",
                                minimum=0, exclusive_minimum=True, maximum=86400),
        "memory-limit-mb": Option(4096, "memory (MiB) the model-building process may allocate beyond torch itself",
                                  minimum=64, maximum=2**22),
    }


ModelNotAnalysed.VALID = [
    """
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self, vocab=100):
            super().__init__()
            self.lstm = nn.LSTM(8, 16)
    """,
]
ModelNotAnalysed.INVALID = [
    Invalid("""
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.lstm = nn.LSTM(config["features"], config["hidden"])
    """, lines=[3]),
    Invalid("""
    import torch.nn as nn

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16)
            raise RuntimeError("needs a GPU")
    """, lines=[3]),
]
