from rnnlint.diagnostics import Severity
from rnnlint.rule import Invalid, Rule, Valid


class SyntaxErrorRule(Rule):
    """A file that cannot be read or parsed; every other rule skips it.

    **What it catches.** Python source that does not parse (the parser's message
    and position are given), files that are not Python text at all (binary data
    under a ``.py`` name), files whose bytes do not decode in their declared or
    default encoding (PEP 263 coding cookies are honoured), and files that
    cannot be read.

    **Why it matters.** A file rnnlint cannot parse is a file it cannot check:
    the finding says so rather than passing it over in silence. The run goes on
    with the other files.

    **Example.**

        def train(:   # RNN900: cannot parse

    **Fix safety.** No fix: correct the syntax (or the encoding) by hand.
    """

    code = "RNN900"
    name = "syntax-error"
    severity = Severity.ERROR
    relevant_words = None  # every file: CPython's parser answers for the files nothing else reads

    VALID = [Valid("x = 1\n")]
    INVALID = [Invalid("def train(:\n    pass\n", lines=[1])]
