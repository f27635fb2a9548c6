"""Cache entries bound to what they describe, with a key that no checked tree holds.

The results cache and the index cache live, by default, inside the checked
project (``.rnnlint_cache/``), so whoever can edit the repository can edit
them: a pull request that commits a results entry saying ``"diagnostics": []``
would hide real findings, and a forged index summary could make a recurrent
model look like a plain one. A content digest inside the entry does not help
(the forger computes it too), and the findings themselves cannot be
re-derived without doing the analysis the cache exists to skip.

So every entry is sealed: an HMAC-SHA256 over the entry's name (which encodes
what it describes: the settings and the file's path for a result, the content
digest for a summary) and its bytes, with a secret of 32 random bytes kept in
the user's own cache folder (``$XDG_CACHE_HOME/rnnlint/cache-key``, else
``~/.cache/rnnlint/cache-key``; created with mode 0600 on first use), never in
the checked tree. Without the secret an entry can be neither forged nor moved
to describe another file; an edited, truncated, renamed or foreign entry fails
the check and is a cache miss. The check runs before the JSON is parsed, so a
hostile entry (nesting deep enough to overflow the parser) is never parsed.

Where no key can be kept (no writable home), :func:`available` is False and the
caches are off: the answers stay right, only slower. So are they when the key
file lies inside the checked tree (:func:`key_inside`): a key found there could
have been committed with the forged entries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

from rnnlint.regular import read_regular

_MAGIC = b"rnnlint-sealed-1 "
_KEY_BYTES = 32
_key: bytes | None = None
_loaded = False


def key_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnlint" / "cache-key"


def _read_key(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size != _KEY_BYTES:
            return None
        data = handle.read(_KEY_BYTES + 1)
    return data if len(data) == _KEY_BYTES else None


def _create_key(path: Path) -> bytes | None:
    """A new key, published atomically (link, not rename): two first runs agree on one key."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".cache-key.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(_KEY_BYTES))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another run won: use its key
        finally:
            os.unlink(tmp)
    except OSError:
        return None
    return _read_key(path)


def key() -> bytes | None:
    """The secret, created on first use; None when it cannot be kept."""
    global _key, _loaded
    if not _loaded:
        path = key_file()
        _key = _read_key(path) or _create_key(path)
        _loaded = True
    return _key


def available() -> bool:
    return key() is not None


def key_inside(root: Path) -> bool:
    """Is the key file under ``root``? Then whoever edits that tree could plant a key of their own
    (``XDG_CACHE_HOME`` set inside a CI workspace, or a check of the home folder): no cache is trusted."""
    key_path = os.path.realpath(key_file())
    real_root = os.path.realpath(root).rstrip(os.sep) + os.sep
    return key_path.startswith(real_root)


def _mac(secret: bytes, name: str, payload: bytes) -> bytes:
    return hmac.new(secret, name.encode("utf-8", "surrogateescape") + b"\0" + payload, hashlib.sha256).hexdigest().encode()


def seal(name: str, payload: bytes) -> bytes | None:
    """The bytes to store for ``payload`` under ``name``; None when there is no key (store nothing)."""
    secret = key()
    if secret is None:
        return None
    return _MAGIC + _mac(secret, name, payload) + b"\n" + payload


def unseal(name: str, blob: bytes) -> bytes | None:
    """The payload of a sealed entry stored under ``name``, or None for anything not sealed by this key."""
    secret = key()
    if secret is None or not blob.startswith(_MAGIC):
        return None
    mac, newline, payload = blob[len(_MAGIC):].partition(b"\n")
    if not newline or not hmac.compare_digest(mac, _mac(secret, name, payload)):
        return None
    return payload


def read_json(file: Path):
    """The JSON document of a sealed cache entry (see :func:`write_json`), or None for a miss:
    no entry, or one not sealed with this user's key (edited, foreign, corrupt)."""

    try:
        payload = unseal(file.name, read_regular(file))
        return None if payload is None else json.loads(payload)
    except (OSError, ValueError, RecursionError):
        return None


def write_json(root: Path, file: Path, document) -> None:
    """Seal ``document`` and store it as ``file`` under the cache folder ``root``, atomically.

    A folder that cannot be written, or no key to seal with, stores nothing: a
    later run gets correct answers, only slower. A ``*`` ``.gitignore`` goes only
    into a cache folder rnnlint itself creates (never into ``cache-dir = ".."``).
    """
    blob = seal(file.name, json.dumps(document).encode("utf-8"))
    if blob is None:
        return
    tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp")
    try:
        if not file.parent.is_dir():
            fresh = not os.path.lexists(root)
            file.parent.mkdir(parents=True, exist_ok=True)
            if fresh:
                (root / ".gitignore").write_text("# created by rnnlint: safe to delete\n*\n", "utf-8")
        tmp.write_bytes(blob)
        os.replace(tmp, file)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


_CODE_DIGESTS: dict[tuple[str, ...], str] = {}


def code_digest(*paths: Path) -> str:
    """A short hash of the source files that compute a cached summary: a cache keyed by it is never
    read by another version of that code (a dev install, an upgrade that keeps the version number)."""
    key = tuple(str(p) for p in paths)
    if key not in _CODE_DIGESTS:
        h = hashlib.blake2b(digest_size=6)
        for path in paths:
            h.update(Path(path).read_bytes())
        _CODE_DIGESTS[key] = h.hexdigest()
    return _CODE_DIGESTS[key]
