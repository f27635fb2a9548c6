"""``rnnlint verify``: a short training trial before and after the fixes.

The parent side (``trial``, ``compare``, ``report``, ``plot``, ``command``)
never imports torch; only the child process (``bootstrap``) does.
"""
