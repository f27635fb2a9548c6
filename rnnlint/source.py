"""Reading and writing the user's files without losing anything.

A :class:`SourceFile` remembers what it takes to write the file back exactly as
the user had it: encoding (PEP 263 cookie or BOM), newline style, file mode, and
a hash of the bytes read so that a file changed on disk since is never
overwritten.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import stat
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

# Larger sources are generated code or data: parsing one takes minutes and gigabytes.
MAX_SOURCE_BYTES = 2 * 1024 * 1024


class SourceError(Exception):
    """A file that cannot be read, decoded or written; the message says why.

    ``line`` is where the problem is (an undecodable byte), 1 when unknown.
    """

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class SourceFile:
    """A decoded source file.

    It is also what :class:`~rnnlint.runner.Session` checks and fixes: a
    *document* with ``text`` (what the rules read), ``digest``, ``file`` (what
    a fix overwrites), ``for_output``, ``render`` and ``diff``. A notebook
    (:class:`rnnlint.notebook.Notebook`) has the same members, so one code path
    serves both.
    """

    path: Path
    text: str
    encoding: str
    digest: str

    @property
    def file(self) -> "SourceFile":
        return self

    def for_output(self, diagnostic):
        """The finding as reported: for a plain file, as found."""
        return diagnostic

    def render(self, text: str) -> str:
        """The file's new content once ``text`` is fixed."""
        return text

    def diff(self, text: str, display: str) -> str:
        import difflib  # only when a fix changed something

        return "".join(difflib.unified_diff(self.text.splitlines(keepends=True), text.splitlines(keepends=True),
                                            fromfile=f"a/{display}", tofile=f"b/{display}"))

    @property
    def newline(self) -> str:
        """The file's own newline sequence (first one seen), ``\\n`` by default."""
        i = self.text.find("\n")
        if i > 0 and self.text[i - 1] == "\r":
            return "\r\n"
        if i < 0 and "\r" in self.text:
            return "\r"
        return "\n"


def digest_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode(data: bytes, path: Path) -> tuple[str, str]:
    """Decode Python source bytes the way the interpreter would.

    Returns ``(text, encoding)``. Newlines are kept as they are in the file so
    that edits and positions refer to the user's real text.
    """
    if b"\x00" in data[:8192]:
        raise SourceError("binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "invalid or missing encoding declaration" not in str(exc):
            raise SourceError(f"cannot determine encoding: {exc}") from None
        encoding = "utf-8"  # undecodable bytes in the first two lines: say where below
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(
            f"cannot decode as {encoding}: byte 0x{data[exc.start]:02x} on line {line} is invalid; "
            "add a PEP 263 coding cookie (# -*- coding: latin-1 -*-) or re-save the file as UTF-8",
            line,
        ) from None
    except LookupError:
        raise SourceError(f"unknown encoding {encoding!r} in coding cookie") from None
    if text.startswith("\ufeff"):  # utf-8-sig keeps the BOM out of the text
        text = text[1:]
    return text, encoding


# ``.NAME.XXXXXXXX.rnnlint-tmp``: what a write killed before its rename leaves behind.
# Discovery never picks these up (not .py/.ipynb); the next write in their folder removes them.
TMP_SUFFIX = ".rnnlint-tmp"
STALE_TMP_SECONDS = 60  # a younger one may belong to a run in progress
_swept: set[str] = set()


def _sweep(directory: str) -> None:
    """Remove stale temp files of killed runs from ``directory``, once per directory and process."""
    if directory in _swept:
        return
    _swept.add(directory)
    now = time.time()
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not (entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX)):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_TMP_SECONDS:
                        os.unlink(entry.path)
                except OSError:
                    pass
    except OSError:
        pass


def read_file_bytes(path: Path, limit: int | None = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a regular file; :class:`SourceError` for anything else or for one over ``limit``.

    Opened non-blocking: reading a FIFO named ``x.py`` would otherwise wait forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SourceError("not a regular file (a pipe, socket or device); skipped")
            if limit is not None and info.st_size > limit:
                raise SourceError(
                    f"file too large to analyse ({info.st_size / 2**20:.1f} MiB, the limit is "
                    f"{limit // 2**20} MiB): generated code or data? add it to `exclude`"
                )
            return handle.read()
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from None


def read_source(path: Path) -> SourceFile:
    data = read_file_bytes(path)
    text, encoding = decode(data, path)
    return SourceFile(path=path, text=text, encoding=encoding, digest=digest_bytes(data))


def parse_python(text: str) -> cst.Module:
    """libcst's tree of a user's source, once CPython's own parser has accepted it.

    libcst's native parser overflows the C stack on nesting that CPython
    refuses (about 2,000 nested brackets, 20,000 chained attributes or
    operators): the process dies with a segmentation fault and the whole run
    is lost. CPython raises SyntaxError, RecursionError or MemoryError instead
    (ValueError for a NUL byte), and its parser costs about a tenth of libcst's.
    Any other SyntaxError is left for libcst to judge: the code may use syntax
    newer than this interpreter's (``type X = ...`` read by Python 3.11).
    """
    try:
        ast.parse(text)
    except SyntaxError as error:
        if "too many" in (error.msg or ""):  # nested parentheses, levels of indentation
            raise
    return cst.parse_module(text)


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding)


def write_atomic(source: SourceFile, new_text: str) -> None:
    """Write ``new_text`` over ``source.path`` atomically, keeping encoding and mode.

    Raises :class:`SourceError` when the file changed on disk since it was read
    (the user's newer edit wins over our fix) or when the new text cannot be
    written in the file's encoding. A symbolic link is followed, so the file it
    points to is rewritten and the link stays a link.
    """
    path = Path(os.path.realpath(source.path))
    try:
        data = new_text.encode(source.encoding)
    except UnicodeEncodeError as exc:
        raise SourceError(
            f"the fixed text has {new_text[exc.start]!r}, which the file's encoding ({source.encoding}) "
            "cannot represent; not written"
        ) from None
    if source.encoding == "utf-8-sig" and not data.startswith(b"\xef\xbb\xbf"):
        data = b"\xef\xbb\xbf" + data
    try:
        current = path.read_bytes()
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise SourceError(f"cannot re-read file before writing: {exc.strerror or exc}") from None
    if digest_bytes(current) != source.digest:
        raise SourceError("file changed on disk since it was read; not overwritten")
    _sweep(str(path.parent))
    import tempfile  # only fixes write files: a check should not pay for importing it

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
