"""Causes a user can act on, told apart in the child: the environment, a library, or the model's own code.

A model that fails to import because ``torchvision`` asks ``torch`` for a name
it no longer has is not a bug of the model: the environment differs from what
the project needs. A refused write or subprocess that ``matplotlib`` attempts
while the model's module is imported is matplotlib's doing, not the model's.
These helpers name the module, the library and its installed version, so
that a note says which of the three it is and what to do.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from pathlib import Path

_CANNOT_IMPORT = re.compile(r"cannot import name '([^']+)'")
_LIBRARY_FOLDERS = ("site-packages", "dist-packages")


def library_of(file: str) -> str | None:
    """The installed package a source file belongs to (``matplotlib``), None for anything else."""
    parts = Path(file).parts
    for folder in _LIBRARY_FOLDERS:
        if folder in parts:
            index = len(parts) - 1 - parts[::-1].index(folder)
            if index + 1 < len(parts):
                name = parts[index + 1]
                return name[:-3] if name.endswith(".py") else name
    return None


def version_of(package: str) -> str:
    """``torch 2.13.0``, or the bare name when the installed version cannot be told."""
    try:
        from importlib import metadata

        names = metadata.packages_distributions().get(package) or [package]
        return f"{package} {metadata.version(names[0])}"
    except Exception:  # noqa: BLE001 - a version only makes the message more precise
        return package


def where(file: str, roots: list[str]) -> str:
    """A frame's file as a user recognises it: ``train.py`` in the project, ``torchvision 0.9.0`` for a library."""
    library = library_of(file)
    if library is not None:
        return version_of(library)
    for root in roots:
        try:
            relative = os.path.relpath(file, root)
        except ValueError:
            continue
        if not relative.startswith(".."):
            return relative
    return os.path.basename(file)


def import_failure(exc: ImportError, roots: list[str]) -> str | None:
    """Why importing the model's module failed, when the cause is the environment (a missing or different
    library); None when the module at fault is the project's own."""
    module = exc.name or ""
    top = module.split(".")[0]
    if isinstance(exc, ModuleNotFoundError):
        if not top or any((Path(root) / top).exists() or (Path(root) / f"{top}.py").exists() for root in roots):
            return None
    elif exc.path is None or library_of(str(exc.path)) is None:
        return None
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    importer = where(frames[-1].filename, roots) if frames else "its module"
    if isinstance(exc, ModuleNotFoundError):
        return (f"{importer} imports `{module}`, which is not installed in the environment rnnlint runs in "
                f"({sys.executable})")
    found = _CANNOT_IMPORT.search(str(exc))
    name = f"`{found.group(1)}`" if found else "a name"
    return (f"{importer} imports {name} from `{module}`, which the installed {version_of(top)} does not have: "
            f"your environment's {top} differs from the version the project needs")
