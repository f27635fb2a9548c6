"""rnnlint: find and fix the mistakes that make recurrent models fail to train."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``rnnlint.watch(model, optimizer)``: imported on first use, so that ``import rnnlint`` stays light
    if name == "watch":
        import importlib

        return importlib.import_module("rnnlint.watch")
    raise AttributeError(f"module 'rnnlint' has no attribute {name!r}")
