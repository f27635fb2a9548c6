"""Containment for the child processes that run a user's code.

rnnlint runs user code in two places: the graph stage builds models and runs
them on a probe batch, and ``rnnlint verify`` runs a training script. Both do
it in a child process started in its own session (so its process group holds
everything it forks), under a time limit the parent enforces. This module holds
the rest, shared by both:

Parent side
    :func:`kill_group` ends the child's whole process group (data-loader
    workers, subprocesses, daemons) and reaps the child; :func:`group_alive`
    tells whether anything of the group outlived the child; :func:`group_rss`
    measures the group's resident memory, for the verifier's memory limit.

Child side
    :class:`Guard` is an audit hook (PEP 578) that refuses, with a
    ``PermissionError`` that names the path, writes to files outside the
    directories a child may write, and, where asked, starting or signalling
    processes. It keeps a list of what it refused so that the parent can report
    it even when the user's code swallowed the error.

Audit hooks see what Python code does, not what a C extension does on its own:
they contain ordinary code (a constructor that saves a checkpoint, a forward
that starts a worker pool), not an adversary. The time, memory and process
group limits hold regardless. This module imports only the standard library:
the verifier's bootstrap loads it by path, without importing rnnlint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

# audit event -> (what it does, positions of the arguments that are paths it changes)
_PATH_EVENTS = {
    "os.remove": ("delete", (0,)), "os.rmdir": ("delete", (0,)), "os.mkdir": ("create", (0,)),
    "os.rename": ("move", (0, 1)), "os.chmod": ("change the mode of", (0,)), "os.chown": ("change the owner of", (0,)),
    "os.truncate": ("truncate", (0,)), "os.utime": ("touch", (0,)), "os.link": ("create", (1,)),
    "os.symlink": ("create", (1,)), "shutil.rmtree": ("delete", (0,)), "shutil.copyfile": ("write", (1,)),
    "shutil.copymode": ("change the mode of", (1,)), "shutil.copystat": ("touch", (1,)),
}
_PROCESS_EVENTS = {
    "os.fork": "fork", "os.forkpty": "fork", "os.system": "run a shell command", "os.exec": "exec a program",
    "os.spawn": "spawn a process", "os.posix_spawn": "spawn a process", "subprocess.Popen": "start a subprocess",
    "os.kill": "signal a process", "os.killpg": "signal a process group",
}


def _under(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == folder or path.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders)


class Guard:
    """Refuse writes under ``protected`` (except under ``writable``) and, unless allowed, processes.

    The graph stage protects ``/`` and makes a scratch folder writable; the
    verifier protects the user's project and makes the trial's copy writable.
    Paths are compared after resolving symbolic links, so a link into a
    protected folder does not get around it. ``why`` ends every refusal.
    """

    def __init__(self, *, protected=(), writable=(), processes: bool = True, why: str = "") -> None:
        self.protected = tuple(os.path.realpath(p) for p in protected)
        self.writable = tuple(os.path.realpath(p) for p in writable)
        self.processes = processes
        self.why = why
        self.blocked: list[str] = []

    def install(self) -> "Guard":
        sys.addaudithook(self._hook)  # cannot be removed: the child exists only to run the user's code
        return self

    def _refuse(self, what: str) -> None:
        self.blocked.append(what)
        raise PermissionError(f"rnnlint blocked an attempt to {what}: {self.why}")

    def _hook(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None:
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & _WRITE_FLAGS)
            if writing:
                self._check_path(path, "write")
        elif event in _PATH_EVENTS:
            verb, positions = _PATH_EVENTS[event]
            for position in positions:
                if position < len(args) and isinstance(args[position], (str, bytes, os.PathLike)):
                    self._check_path(args[position], verb)
        elif event in _PROCESS_EVENTS and not self.processes:
            self._refuse(_PROCESS_EVENTS[event])

    def _check_path(self, path, verb: str) -> None:
        resolved = os.path.realpath(os.fsdecode(os.fspath(path)))  # raises no audit event of its own
        if _under(resolved, self.protected) and not _under(resolved, self.writable):
            self._refuse(f"{verb} {resolved}")


# -- parent side ----------------------------------------------------------------


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's process group (it was started with ``start_new_session``) and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (after its leader exited: what it left behind).

    Zombies do not count: in a container whose init never reaps them, a worker
    that exited normally would otherwise look alive forever.
    """
    members = _members(pgid)
    if members is None:  # no /proc: ask the kernel whether the group has anyone at all
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return any(state != b"Z" for state, _ in members)


def group_rss(pgid: int) -> int | None:
    """Resident bytes of every process in the group, from ``/proc``; ``None`` where there is no ``/proc``."""
    members = _members(pgid)
    if members is None:
        return None
    return sum(rss for _, rss in members) * os.sysconf("SC_PAGE_SIZE")


def _members(pgid: int) -> list[tuple[bytes, int]] | None:
    """``(state, resident pages)`` of each process in the group, from ``/proc``; ``None`` without it."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    found = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        # the fields after the command name: state, ppid, pgrp, ... rss is the 22nd
        if len(fields) > 21 and int(fields[2]) == pgid:
            found.append((fields[0], int(fields[21])))
    return found
