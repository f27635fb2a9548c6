"""Reading only regular files.

A FIFO, socket or device named ``pyproject.toml`` or ``.gitignore`` (or passed to
``--config``), or a cache entry replaced by one, must not make rnnlint wait forever
or read without end: the file is opened non-blocking and checked with ``fstat``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_regular(path: Path, limit: int = 16 * 2**20) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file (a pipe, socket or device)", str(path))
        if info.st_size > limit:
            raise OSError(0, f"larger than {limit // 2**20} MiB", str(path))
        return handle.read(limit + 1)
