"""rnnlint: find and fix the mistakes that make recurrent models fail to train."""

__version__ = "0.1.0"
