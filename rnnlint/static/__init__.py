"""The static stage: the files of a project read as text and syntax, never run.

* :mod:`~rnnlint.static.discovery` — which files a run looks at (excludes, ``.gitignore``).
* :mod:`~rnnlint.static.projectmap` — every file mapped with CPython's parser; which files can matter.
* :mod:`~rnnlint.static.index` — what the rest of the project defines (classes, imports, summaries).
* :mod:`~rnnlint.static.registry` — loading the rule packs.
* :mod:`~rnnlint.static.analysis` — one file: parse once, walk once with every rule, findings.
* :mod:`~rnnlint.static.final` — the last step every finding passes (``# noqa``, per-file-ignores,
  notebook positions).
* :mod:`~rnnlint.static.fixer` — applying fixes round by round; :mod:`~rnnlint.static.add_noqa`.
* :mod:`~rnnlint.static.runner` — the :class:`~rnnlint.static.runner.Session` that ties them together,
  with the results cache (:mod:`~rnnlint.static.cache`) and worker processes.
* :mod:`~rnnlint.static.output` — text, JSON, SARIF and GitHub annotations.

The analyses rules share (where values come from, what pads or packs a batch, what a training step
is) live in :mod:`rnnlint.flow`.
"""
