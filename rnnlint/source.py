"""Reading and writing the user's files without losing anything.

A :class:`SourceFile` remembers what it takes to write the file back exactly as
the user had it: encoding (PEP 263 cookie or BOM), newline style, file mode, and
a hash of the bytes read so that a file changed on disk since is never
overwritten.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path


class SourceError(Exception):
    """A file that cannot be read, decoded or written; the message says why.

    ``line`` is where the problem is (an undecodable byte), 1 when unknown.
    """

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class SourceFile:
    path: Path
    text: str
    encoding: str
    digest: str

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


def read_source(path: Path) -> SourceFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from None
    text, encoding = decode(data, path)
    return SourceFile(path=path, text=text, encoding=encoding, digest=digest_bytes(data))


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".rnnlint-tmp", dir=path.parent)
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
