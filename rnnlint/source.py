"""Reading and writing the user's files without losing anything.

A :class:`SourceFile` remembers what it takes to write the file back exactly as
the user had it: encoding (PEP 263 cookie or BOM), newline style, the bytes
read, and the file's identity (device, inode, size, modification time) when it
was read, so that a file changed on disk since is never overwritten.

:func:`write_atomic` is the one place a fix reaches the disk; its docstring
lists what it guarantees and which files it leaves alone.
"""

from __future__ import annotations

import ast
import errno
import hashlib
import io
import os
import stat
import sys
import re
import time
import tokenize
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a file is parsed: reading, hashing and decoding never need it
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

    It is also what :class:`~rnnlint.static.runner.Session` checks and fixes: a
    *document* with ``text`` (what the rules read), ``digest``, ``file`` (what
    a fix overwrites), ``for_output``, ``render`` and ``diff``. A notebook
    (:class:`rnnlint.notebook.Notebook`) has the same members, so one code path
    serves both.
    """

    path: Path
    text: str
    encoding: str
    digest: str
    data: bytes | None = field(default=None, repr=False)  # the bytes read: untouched lines keep them
    identity: "Identity | None" = None  # the file as it was when read: what a write checks against

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
        return newline_of(self.text)


def newline_of(text: str) -> str:
    """The newline sequence ``text`` uses (its first one): ``\\r\\n``, ``\\r`` or ``\\n`` (the default)."""
    match = _NEWLINE.search(text)
    return match.group() if match else "\n"


_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Identity:
    """Which file, and which version of its content, without reading it: what a write compares."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> "Identity":
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def display_path(path: Path, real: Path | None = None) -> str:
    """``path`` as findings show it, their locations and the other files their messages name: relative to the
    working folder when inside it, else as given. ``real``: its resolved path, when the caller knows it."""
    inside = _real_cwd(os.getcwd())  # the folder with a separator after it: a prefix of what lies inside
    real = str(real or path.resolve())
    if not real.startswith(inside):
        return str(path)
    relative = real[len(inside):]
    return relative.replace(os.sep, "/") if os.sep != "/" else relative


@lru_cache(maxsize=8)
def _real_cwd(cwd: str) -> str:
    return os.path.join(str(Path(cwd).resolve()), "")


class RealPaths:
    """``path.resolve()``, asked of the file system once per path and run.

    A large run asks it of every file, some of them hundreds of thousands of
    times (the flow model), and ``resolve()`` reads every component of the
    path. A folder is resolved once for all its files: a file that is not a
    symbolic link is its resolved folder and its own name (one ``lstat``).
    """

    def __init__(self) -> None:
        self._found: dict[Path, Path] = {}

    def know(self, path: Path, real: Path) -> None:
        """``real`` is what ``path`` resolves to (discovery worked it out as it walked)."""
        self._found[path] = real

    def __call__(self, path: Path) -> Path:
        found = self._found.get(path)
        if found is None:
            parent = path.parent
            if parent == path or path.name in ("", "..") or os.path.islink(path):
                found = path.resolve()
            else:
                found = self(parent) / path.name
            self._found[path] = found
        return found


def digest_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


#: what the results cache records, in place of a content digest, for a file whose existence alone
#: mattered (a module found by import resolution, see ``ProjectIndex.recording``)
EXISTS = "exists"


def decode(data: bytes, path: Path) -> tuple[str, str]:
    """Decode Python source bytes the way the interpreter would.

    Returns ``(text, encoding)``. Newlines are kept as they are in the file so
    that edits and positions refer to the user's real text.
    """
    if b"\x00" in data[:8192]:
        raise SourceError("binary file (contains NUL bytes), not Python source")
    nul = data.find(b"\x00")
    if nul >= 0:  # CPython refuses such a file, so rnnlint neither analyses nor fixes it
        line = data[:nul].count(b"\n") + 1
        raise SourceError(
            f"source code cannot contain NUL bytes (line {line}): Python refuses this file; it is skipped", line
        )
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
    """The bytes of a regular file; :class:`SourceError` for anything else or for one over ``limit``."""
    return read_file(path, limit)[0]


def read_file(path: Path, limit: int | None = MAX_SOURCE_BYTES) -> tuple[bytes, Identity]:
    """The bytes of a regular file and its :class:`Identity` as read (from the open handle).

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
            return handle.read(), Identity.of(info)
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from None


def read_source(path: Path, data: bytes | None = None) -> SourceFile:
    """``path`` decoded; ``data``: its content as given on stdin (no file is read, and none can be written)."""
    data, identity = read_file(path) if data is None else (data, None)
    text, encoding = decode(data, path)
    return SourceFile(path=path, text=text, encoding=encoding, digest=digest_bytes(data), data=data,
                      identity=identity)


def parse_python(text: str, accepted: bool = False) -> cst.Module:
    """libcst's tree of a user's source, once CPython's own parser has accepted it.

    libcst's native parser overflows the C stack on nesting that CPython
    refuses (about 2,000 nested brackets, 20,000 chained attributes or
    operators): the process dies with a segmentation fault and the whole run
    is lost. CPython raises SyntaxError, RecursionError or MemoryError instead
    (ValueError for a NUL byte), and its parser costs about a tenth of libcst's.
    Any other SyntaxError is left for libcst to judge: the code may use syntax
    newer than this interpreter's (``type X = ...`` read by Python 3.11).

    ``accepted``: CPython's parser already accepted this very text in this run (the project map
    parses every file with it), so it is not asked again: a sixth of the cost of a libcst parse.
    libcst then builds the tree without validating each node as it is made (see :func:`_unvalidated`).
    """
    if not accepted:
        try:
            ast.parse(text)
        except SyntaxError as error:
            if "too many" in (error.msg or ""):  # nested parentheses, levels of indentation
                raise
    import libcst as cst

    with _unvalidated() if accepted else nullcontext():
        return cst.parse_module(text)


@contextmanager
def _unvalidated():
    """libcst's node constructors without their validation, while its parser builds a tree of Python that
    CPython's parser accepted: every node checks its own invariants as it is made (``__post_init__``
    calls ``_validate``), a fifth of a parse, and the parser's nodes of valid code pass them (libcst's
    own comment on ``__post_init__`` suggests skipping it when parsing). Nodes a fix builds are still
    validated: the checks come back when the tree is built. rnnlint parses on one thread per process."""
    from libcst._nodes.base import CSTNode

    validating = CSTNode.__dict__["__post_init__"]
    CSTNode.__post_init__ = _no_validation  # type: ignore[method-assign]
    try:
        yield
    finally:
        CSTNode.__post_init__ = validating  # type: ignore[method-assign]


def _no_validation(self) -> None:
    pass


def compile_error(text: str, filename: str) -> str | None:
    """Why CPython (this interpreter) refuses to compile ``text``; None when it compiles.

    Compiling runs nothing. It finds what the parser alone lets through
    (``return`` outside a function, ``nonlocal`` at module level, a repeated
    argument name, syntax newer than this Python): such a file is never fixed.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning (``"\\d"``) is the user's business, not an error
            compile(text, filename, "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f" (line {error.lineno})" if error.lineno else ""
        return f"{type(error).__name__}: {error.msg}{where}"
    except (ValueError, RecursionError, MemoryError) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return None


# -- writing ------------------------------------------------------------------------


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding)


_LINE_TEXT = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_LINE_BYTES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_BOM = b"\xef\xbb\xbf"


def _encode_all(text: str, encoding: str) -> bytes:
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise SourceError(
            f"the fixed text has {text[exc.start]!r}, which the file's encoding ({encoding}) "
            "cannot represent; not written"
        ) from None
    if encoding == "utf-8-sig" and not data.startswith(_BOM):
        data = _BOM + data
    return data


def encode_like(source: SourceFile, new_text: str) -> bytes:
    """``new_text`` in the file's encoding, where only the lines that changed have new bytes.

    Re-encoding the whole text is not enough: several encodings CPython accepts
    write one character in more than one way (utf-7 runs, cp932's duplicate
    codes, iso-2022-jp's escape sequences), so the encoder's choice can differ
    from the user's on lines no fix touched. Lines equal in the old and new
    text keep their original bytes; changed lines are encoded afresh. The result
    must decode to exactly ``new_text``, otherwise (a stateful encoding whose
    state crosses a line end) the whole text is encoded.
    """
    whole = _encode_all(new_text, source.encoding)
    data = source.data
    if not data:
        return whole
    prefix = b""
    if source.encoding == "utf-8-sig" and data.startswith(_BOM):
        prefix, data = _BOM, data[len(_BOM):]
    chunk_encoding = "utf-8" if source.encoding == "utf-8-sig" else source.encoding
    old_lines = _LINE_TEXT.findall(source.text)
    old_bytes = _LINE_BYTES.findall(data)
    if len(old_lines) != len(old_bytes):
        return whole
    new_lines = _LINE_TEXT.findall(new_text)
    # the unchanged head and tail, then a line diff of what lies between (fixes are local)
    head = 0
    while head < min(len(old_lines), len(new_lines)) and old_lines[head] == new_lines[head]:
        head += 1
    tail = 0
    while (tail < min(len(old_lines), len(new_lines)) - head
           and old_lines[-1 - tail] == new_lines[-1 - tail]):
        tail += 1
    import difflib  # only fixes write files

    old_mid = old_lines[head:len(old_lines) - tail]
    new_mid = new_lines[head:len(new_lines) - tail]
    pieces = [prefix, *old_bytes[:head]]
    matcher = difflib.SequenceMatcher(None, old_mid, new_mid, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pieces += old_bytes[head + i1:head + i2]
        elif j2 > j1:
            try:
                pieces.append("".join(new_mid[j1:j2]).encode(chunk_encoding))
            except UnicodeEncodeError:
                return whole  # _encode_all accepted it: cannot happen, but never guess
    pieces += old_bytes[len(old_bytes) - tail:]
    spliced = b"".join(pieces)
    try:
        text = spliced.decode(source.encoding)
    except (UnicodeDecodeError, LookupError):
        return whole
    if text.startswith("\ufeff") and source.encoding != "utf-8-sig":
        text = text[1:]
    return spliced if text == new_text else whole


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _target(source: SourceFile, root: Path | None) -> str:
    """The real file a write replaces: ``source.path``, or the file its symbolic link points to.

    A link that leads out of ``root`` (the checked tree) is not written through;
    nor is one that lies outside it itself (named on the command line, the tree
    found from its target).
    """
    path = os.path.abspath(source.path)
    real = os.path.realpath(path)
    if real != path and root is not None:
        tree = os.path.realpath(root)
        if not (_inside(real, tree) and _inside(os.path.realpath(os.path.dirname(path)), tree)):
            raise SourceError(f"a symbolic link to {real}, outside the checked tree ({tree}); not written through")
    return real


def _xattrs(fd: int) -> dict[str, bytes] | None:
    """The extended attributes of an open file; None where the platform or file system has none."""
    if not hasattr(os, "listxattr"):
        return None
    try:
        return {name: os.getxattr(fd, name) for name in os.listxattr(fd)}
    except OSError:
        return None


def _keep_metadata(tmp_fd: int, before: os.stat_result, xattrs: dict[str, bytes] | None) -> None:
    """Give the new file the mode, owner, group and extended attributes of the one it replaces.

    Raises :class:`SourceError` when one cannot be kept (another user's file, an
    attribute this process may not set): better no fix than a file that changed hands.
    """
    os.fchmod(tmp_fd, stat.S_IMODE(before.st_mode))
    if hasattr(os, "fchown"):
        now = os.fstat(tmp_fd)
        if (now.st_uid, now.st_gid) != (before.st_uid, before.st_gid):
            try:
                os.fchown(tmp_fd, before.st_uid, before.st_gid)
            except OSError as exc:
                raise SourceError(
                    f"cannot keep its owner and group ({before.st_uid}:{before.st_gid}): "
                    f"{exc.strerror or exc}; not written"
                ) from None
        # fchown clears set-user-ID and set-group-ID bits: set the mode again
        os.fchmod(tmp_fd, stat.S_IMODE(before.st_mode))
    if xattrs:
        for name, value in xattrs.items():
            try:
                if name not in os.listxattr(tmp_fd) or os.getxattr(tmp_fd, name) != value:
                    os.setxattr(tmp_fd, name, value)
            except OSError as exc:
                raise SourceError(
                    f"cannot keep its extended attribute {name}: {exc.strerror or exc}; not written"
                ) from None


def _check_unchanged(path: str, source: SourceFile) -> os.stat_result:
    """Compare-and-swap, the compare: the file at ``path`` must still be the one ``source`` read.

    Its identity (device, inode, size, modification time) and the digest of its
    bytes are checked. Raises :class:`SourceError` when it changed or vanished.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise SourceError("file was deleted since it was read; not re-created") from None
    except OSError as exc:
        raise SourceError(f"cannot re-read file before writing: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if source.identity is not None and Identity.of(info) != source.identity:
            if (info.st_dev, info.st_ino) != (source.identity.device, source.identity.inode):
                raise SourceError("file was replaced on disk since it was read; not overwritten")
            raise SourceError("file changed on disk since it was read; not overwritten")
        if not stat.S_ISREG(info.st_mode):
            raise SourceError("not a regular file any more; not written")
        if digest_bytes(handle.read()) != source.digest:
            raise SourceError("file changed on disk since it was read; not overwritten")
    return info


# renameat2(2) with RENAME_EXCHANGE: swap two names atomically (Linux 3.15+, most local file systems)
_RENAME_EXCHANGE = 2
_renameat2 = None


def _exchange(a: str, b: str) -> bool:
    """Atomically swap the files at ``a`` and ``b``; False where the system cannot (then nothing happened)."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            function = libc.renameat2
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            function.restype = ctypes.c_int
            _renameat2 = function
        except (OSError, AttributeError):
            _renameat2 = False
    if not _renameat2:
        return False
    import ctypes

    at_fdcwd = -100
    if _renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error == errno.ENOENT:
        raise SourceError("file was deleted since it was read; not re-created")
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM, errno.EXDEV):
        return False  # this file system or kernel cannot exchange: fall back to a rename
    raise OSError(error, os.strerror(error), b)


def write_atomic(source: SourceFile, new_text: str, root: Path | None = None) -> None:
    """Replace the file ``source`` was read from by ``new_text``, atomically, or leave it alone.

    * Only the lines that changed get new bytes (see :func:`encode_like`):
      encoding, BOM and newlines of the rest stay byte for byte.
    * Atomic: the new content is written to a temporary file in the same
      folder, flushed to disk, then renamed over the file; a run killed at any
      moment leaves the old file or the new one, never half of one.
    * Compare-and-swap: just before the rename the file must still be the one
      read (device, inode, size, modification time and the digest of its
      bytes). On Linux the rename is an atomic exchange, and the file swapped
      out is checked once more: a save that came in between is swapped back.
      A file changed meanwhile is not overwritten; a file deleted meanwhile is
      not re-created. (Where there is no exchange, ``os.replace`` follows
      the last compare: a save in the microseconds between them is lost.)
    * The new file keeps the mode, owner, group and extended attributes of the
      old one; when one cannot be kept, nothing is written.
    * Left alone, with a :class:`SourceError` that says why: a read-only file
      (no write permission for its owner, whoever runs rnnlint), a file with
      several hard links (replacing it would split them, and rewriting it in
      place is not atomic), a symbolic link to a file outside ``root`` (the
      checked tree). A link inside the tree stays a link: its target is fixed.
    """
    path = _target(source, root)
    data = encode_like(source, new_text)
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise SourceError("file was deleted since it was read; not re-created") from None
    except OSError as exc:
        raise SourceError(f"cannot re-read file before writing: {exc.strerror or exc}") from None
    if not before.st_mode & stat.S_IWUSR:
        raise SourceError(f"read-only file (mode {stat.S_IMODE(before.st_mode):04o}); left alone")
    if before.st_nlink > 1:
        raise SourceError(
            f"the file has {before.st_nlink} hard links and replacing it would split them; left alone"
        )
    _check_unchanged(path, source)
    directory = os.path.dirname(path)
    _sweep(directory)
    import tempfile  # only fixes write files: a check should not pay for importing it

    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            source_fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                xattrs = _xattrs(source_fd)
            finally:
                os.close(source_fd)
            _keep_metadata(handle.fileno(), before, xattrs)
            os.fsync(handle.fileno())
        # the compare, as late as possible, then the swap
        _check_unchanged(path, source)
        if _exchange(tmp, path):
            # ``tmp`` now names what was at ``path`` at the instant of the swap
            try:
                _check_unchanged(tmp, source)
            except SourceError:
                _exchange(tmp, path)  # a save came in between: give it back
                raise SourceError("file changed on disk while the fix was being written; not overwritten") from None
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
