"""Containment for the child processes that run a user's code.

rnnlint runs user code in two places: the graph stage builds models and runs
them on a probe batch, and ``rnnlint verify`` runs a training script. Both do
it in a child process started in its own session (so its process group holds
everything it forks), under a time limit the parent enforces. This module holds
the rest, shared by both. It imports only the standard library: the verifier's
bootstrap loads it by path, without importing rnnlint.

Parent side
    :func:`start` starts a child in its own session with a parent-death signal
    (Linux), after making this process a *child subreaper*, so that a daemon the
    child detaches (``setsid`` and a double fork) becomes our child instead of
    init's; :func:`kill_leftovers` finds and kills such descendants after the
    run. :func:`kill_group` ends the child's process group and reaps the child;
    :func:`group_alive` and :func:`group_rss` look at what is left of it.

Child side, in layers (each holds where the OS gives it; the next one does not
rely on it):
    * :func:`isolate_network` - a new, empty network namespace (Linux:
      ``unshare(CLONE_NEWNET)``, in a new user namespace when not root);
    * :func:`confine` - Landlock (Linux 5.13+): writes only beneath the given
      folders, no ``execve``, and on newer kernels no TCP bind/connect and no
      signals to processes outside the child's own domain. Enforced by the
      kernel, so it also holds against C code, ``ctypes`` and
      ``_posixsubprocess``;
    * :class:`Guard` - an audit hook (PEP 578), portable, which refuses writes
      outside the allowed folders (``dir_fd`` resolved through the descriptor's
      real path), ``sqlite3`` databases there, processes or signals outside the
      child's own process group, network calls, and the introspection that
      would let code find and change the hook. Its state is a closure over
      immutable values and functions captured when it is installed, so
      replacing a builtin, a module attribute or ``os.path.realpath`` later
      changes nothing it checks. An audit hook sees what Python code does, not
      what a C extension or ``ctypes`` does on its own: without Landlock it
      contains ordinary code, not an adversary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

LINUX = sys.platform.startswith("linux")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

# audit event -> (what it does, ((position of a path it changes, position of its dir_fd or None), ...))
_PATH_EVENTS = {
    "os.remove": ("delete", ((0, 1),)), "os.rmdir": ("delete", ((0, 1),)), "os.mkdir": ("create", ((0, 2),)),
    "os.rename": ("move", ((0, 2), (1, 3))), "os.chmod": ("change the mode of", ((0, 2),)),
    "os.chown": ("change the owner of", ((0, 3),)), "os.truncate": ("truncate", ((0, None),)),
    "os.utime": ("touch", ((0, 3),)), "os.link": ("create", ((1, 3),)), "os.symlink": ("create", ((1, 2),)),
    "os.setxattr": ("change the attributes of", ((0, None),)),
    "os.removexattr": ("change the attributes of", ((0, None),)),
    "os.chflags": ("change the flags of", ((0, None),)), "os.lchflags": ("change the flags of", ((0, None),)),
    "shutil.rmtree": ("delete", ((0, None),)), "shutil.copyfile": ("write", ((1, None),)),
    "shutil.copymode": ("change the mode of", ((1, None),)), "shutil.copystat": ("touch", ((1, None),)),
    "shutil.copytree": ("write", ((1, None),)), "shutil.move": ("move", ((0, None), (1, None))),
}
_PROCESS_EVENTS = {
    "os.fork": "fork", "os.forkpty": "fork", "os.system": "run a shell command", "os.exec": "exec a program",
    "os.spawn": "spawn a process", "os.posix_spawn": "spawn a process", "subprocess.Popen": "start a subprocess",
    "pty.spawn": "spawn a process", "os.startfile": "start a program",
}
_NETWORK_EVENTS = frozenset({
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.sethostname",
})
# what would let code find the hook's frame or state and change it
_INTROSPECTION_EVENTS = frozenset({
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.settrace", "sys.setprofile",
    "sys._current_frames",
})
_DANGEROUS_IMPORTS = frozenset({"_posixsubprocess"})  # re-importing it would bring back fork_exec


class Guard:
    """Refuse writes under ``protected`` (except under ``writable``) and, unless allowed, processes.

    The graph stage protects ``/`` and makes a scratch folder writable; the
    verifier protects the user's project and makes the trial's copy writable.
    ``processes=False`` refuses starting processes and signalling any other
    process; with ``processes=True`` signals may still reach only the child's
    own process group. ``network=False`` refuses sockets' connect, bind, send
    and name lookups. ``readable``, when given, is where reads go unremarked:
    a read elsewhere is noted in :attr:`read_elsewhere` (the caller then keeps
    the model's messages out of its report). ``why`` ends every refusal.

    After :meth:`install`, changing this object changes nothing: the hook is a
    closure over copies. :attr:`blocked` lists what it refused, so that the
    parent can report it even when the user's code swallowed the error.
    """

    def __init__(self, *, protected=(), writable=(), processes: bool = True, network: bool = True,
                 readable=None, why: str = "") -> None:
        self.protected = tuple(os.path.realpath(p) for p in protected)
        self.writable = tuple(os.path.realpath(p) for p in writable)
        self.readable = None if readable is None else tuple(os.path.realpath(p) for p in readable)
        self.processes = processes
        self.network = network
        self.why = why
        self.blocked: list[str] = []
        #: for each refusal in :attr:`blocked`, the file of the code that attempted it: the innermost
        #: frame outside the standard library and rnnlint ("" when none), so that a library's attempt
        #: is not blamed on the user's code. From the code's own file names: for messages, not for trust.
        self.origins: list[str] = []
        self.read_elsewhere: list[str] = []

    def install(self) -> "Guard":
        hook = _make_hook(self.protected, self.writable, self.readable, self.processes, self.network, self.why,
                          self.blocked.append, self.read_elsewhere.append, self.origins.append)
        if not self.processes:
            _disarm_process_primitives()
        else:
            _wrap_pidfd_signal()
        sys.addaudithook(hook)  # cannot be removed: the child exists only to run the user's code
        return self


def _make_hook(protected, writable, readable, processes, network, why, record, note_read, note_origin):
    """The audit hook: everything it uses is bound here, at install time."""
    attempted_by = _origin_function()
    protected, writable = tuple(protected), tuple(writable)
    readable = None if readable is None else tuple(readable)
    str_, bytes_, int_, type_, len_, any_, isinstance_ = str, bytes, int, type, len, any, isinstance
    str_slice, bytes_decode = str.__getitem__, bytes.decode
    everything = slice(None)
    permission_error, os_error = PermissionError, OSError
    encoding = sys.getfilesystemencoding()
    lstat, readlink, getcwd = os.lstat, os.readlink, os.getcwd
    getpgid, getpgrp, getpid = getattr(os, "getpgid", None), getattr(os, "getpgrp", None), os.getpid
    fspath = os.fspath
    listdir = os.listdir
    sep = os.sep
    posix = os.name == "posix"
    realpath = os.path.realpath  # only off POSIX, where the resolver below does not apply
    path_types = _path_types()
    fd_path = _fd_path_function()
    path_events, process_events = dict(_PATH_EVENTS), dict(_PROCESS_EVENTS)
    network_events, introspection = _NETWORK_EVENTS, _INTROSPECTION_EVENTS
    af_unix = getattr(__import__("socket"), "AF_UNIX", None)
    dangerous_imports = _DANGEROUS_IMPORTS
    write_flags = _WRITE_FLAGS
    fd_root = "/proc/self/fd"

    def refuse(what):
        note_origin(attempted_by())
        record(what)
        raise permission_error(f"rnnlint blocked an attempt to {what}: {why}")

    def as_text(path):
        """The path as an exact ``str`` without running the caller's code; None when it is not a path."""
        kind = type_(path)
        if kind is str_:
            return path
        if kind is bytes_:
            return bytes_decode(path, encoding, "surrogateescape")
        if kind in path_types:
            return as_text(fspath(path))
        if isinstance_(path, str_):
            return str_slice(path, everything)  # an exact copy: no __str__ of a subclass runs
        if isinstance_(path, bytes_):
            return bytes_decode(bytes_.__getitem__(path, everything), encoding, "surrogateescape")
        return None

    def resolve(path, base):
        """``realpath`` from captured primitives: a later monkeypatch of os.path cannot change it."""
        if not posix:
            return realpath(path if base is None else base + sep + path)
        if not path.startswith("/"):
            path = (base if base is not None else getcwd()) + "/" + path
        pending = path.split("/")
        pending.reverse()
        parts = []
        links = 0
        while pending:
            part = pending.pop()
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            candidate = "/" + "/".join(parts + [part])
            try:
                mode = lstat(candidate).st_mode
            except (os_error, ValueError):
                parts.append(part)
                continue
            if (mode & 0o170000) == 0o120000 and links < 40:
                links += 1
                target = readlink(candidate)
                if target.startswith("/"):
                    parts = []
                more = target.split("/")
                more.reverse()
                pending.extend(more)
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def bases(path, dir_fd, unknown_dir_fd):
        """Folders a relative path may be relative to: the cwd, or ``dir_fd``'s real path."""
        if path.startswith(sep) or (not posix and len_(path) > 1 and path[1] == ":"):
            return [None]
        if type_(dir_fd) is int_ and dir_fd >= 0:
            folder = fd_path(dir_fd)
            if folder is None:
                refuse(f"write relative to a directory descriptor rnnlint cannot resolve ({path})")
            return [folder]
        found = [None]
        if unknown_dir_fd and posix:  # os.open does not tell its dir_fd: every open directory is a candidate
            try:
                fds = listdir(fd_root)
            except os_error:
                fds = None
            if fds is None:
                refuse(f"open {path} relative to a descriptor rnnlint cannot resolve")
            for name in fds:
                folder = fd_path(int_(name)) if name.isdigit() else None
                if folder is not None and folder.startswith("/"):
                    found.append(folder)
        return found

    def check(path, verb, dir_fd=None, unknown_dir_fd=False):
        text = as_text(path)
        if text is None:
            refuse(f"{verb} a path given as a {type_(path).__name__}")
        for base in bases(text, dir_fd, unknown_dir_fd):
            resolved = resolve(text, base)
            if _inside(resolved, protected) and not _inside(resolved, writable):
                refuse(f"{verb} {resolved}")

    def _inside(path, folders):
        for folder in folders:
            if path == folder or path.startswith(folder if folder.endswith(sep) else folder + sep):
                return True
        return False

    def check_read(path):
        text = as_text(path)
        if text is None:
            return
        resolved = resolve(text, None)
        if not _inside(resolved, readable):
            note_read(resolved)

    def check_signal(pid, group):
        if type_(pid) is not int_:
            refuse("signal a process")
        if not processes:
            if pid != getpid():
                refuse("signal a process")
            return
        own = getpgrp()
        if group:
            target = pid if pid != 0 else own
        elif pid == 0 or pid == getpid():
            return
        elif pid == -1:
            refuse("signal every process")
        elif pid < 0:
            target = -pid
        else:
            try:
                target = getpgid(pid)
            except os_error:
                return  # no such process: the call fails on its own
        if target != own:
            refuse(f"signal process {'group ' if group else ''}{pid} outside the script's own process group")

    def sqlite_path(database):
        text = as_text(database)
        if text is None or text == "" or text == ":memory:":
            return None
        if text.startswith("file:"):  # a URI: read-only ones are reads
            rest, _, query = text[5:].partition("?")
            if "mode=ro" in query or "immutable=1" in query or "mode=memory" in query:
                return None
            if rest.startswith("//"):
                rest = "/" + rest[2:].partition("/")[2]
            return rest
        return text

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if path is None or type_(path) is int_:
                return
            writing = (type_(mode) is str_ and any_(c in mode for c in "wax+")) or bool(flags & write_flags)
            if writing:
                check(path, "write", None, mode is None)
            elif readable is not None:
                check_read(path)
        elif event in path_events:
            verb, positions = path_events[event]
            for position, fd_position in positions:
                if position < len_(args) and type_(args[position]) is not int_ and args[position] is not None:
                    dir_fd = args[fd_position] if fd_position is not None and fd_position < len_(args) else None
                    check(args[position], verb, dir_fd)
        elif event == "sqlite3.connect":
            path = sqlite_path(args[0]) if args else None
            if path is not None:
                check(path, "open a database at")
        elif event in process_events:
            if not processes:
                refuse(process_events[event])
        elif event == "os.kill":
            check_signal(args[0], False)
        elif event == "os.killpg":
            check_signal(args[0], True)
        elif event in network_events:
            # a unix socket is local (DataLoader workers, multiprocessing): only the network is refused
            if not network and not (args and getattr(args[0], "family", None) == af_unix):
                refuse("use the network")
        elif event in introspection:
            refuse(f"call {event} (it could reach rnnlint's guard)")
        elif event == "import":
            if not processes and args and args[0] in dangerous_imports:
                refuse(f"import {args[0]}")

    return hook


def _origin_function():
    """A function naming the file of the innermost caller outside the standard library and rnnlint."""
    import sysconfig

    getframe = sys._getframe
    paths = sysconfig.get_paths()
    stdlib = tuple({os.path.join(p, "") for key in ("stdlib", "platstdlib") for p in (paths[key], os.path.realpath(paths[key]))})
    own = os.path.join(os.path.dirname(os.path.realpath(__file__)), "")
    libraries = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
    str_, type_, startswith, contains = str, type, str.startswith, str.__contains__  # bound now, like the hook's

    def attempted_by():
        frame = getframe(1)
        while frame is not None:
            name = frame.f_code.co_filename
            if type_(name) is str_ and not (
                    startswith(name, "<") or startswith(name, own)
                    or (startswith(name, stdlib) and not (contains(name, libraries[0]) or contains(name, libraries[1])))):
                return name
            frame = frame.f_back
        return ""
    return attempted_by


def _path_types() -> frozenset:
    import pathlib

    return frozenset({pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath, pathlib.WindowsPath})


def _fd_path_function():
    """A function from a directory descriptor to its real path, or to None where the OS cannot say."""
    readlink = os.readlink
    if os.path.isdir("/proc/self/fd"):
        def fd_path(fd):
            try:
                target = readlink("/proc/self/fd/" + str(fd))
            except (OSError, ValueError):
                return None
            return target if target.startswith("/") else None
        return fd_path
    try:
        import fcntl

        getpath, fcntl_call = fcntl.F_GETPATH, fcntl.fcntl  # macOS
    except (ImportError, AttributeError):
        return lambda fd: None

    def fd_path_darwin(fd):
        try:
            raw = fcntl_call(fd, getpath, bytes(1024))
        except (OSError, ValueError):
            return None
        return os.fsdecode(raw.split(b"\0", 1)[0]) or None
    return fd_path_darwin


def _disarm_process_primitives() -> None:
    """Starting processes without an audit event: ``_posixsubprocess.fork_exec``, pidfd signals."""

    def stub(what):
        def refused(*args, **kwargs):
            raise PermissionError(f"rnnlint blocked an attempt to {what}: this process may not start processes")
        return refused

    try:
        import subprocess as loaded  # with the real fork_exec, so that importing it later still works
        import _posixsubprocess

        _posixsubprocess.fork_exec = stub("start a subprocess")
        if hasattr(loaded, "_fork_exec"):  # 3.11+ keeps its own reference
            loaded._fork_exec = stub("start a subprocess")
    except ImportError:
        pass
    sys.modules["_posixsubprocess"] = None  # a fresh import fails (and the audit hook refuses one after a del)
    if hasattr(signal, "pidfd_send_signal"):
        signal.pidfd_send_signal = stub("signal a process")
    if hasattr(os, "pidfd_open"):
        os.pidfd_open = stub("open a process descriptor")


def _wrap_pidfd_signal() -> None:
    """``pidfd_send_signal`` raises no audit event: let it reach only the caller's own process group."""
    original = getattr(signal, "pidfd_send_signal", None)
    if original is None:
        return
    getpgid, getpgrp, getpid = os.getpgid, os.getpgrp, os.getpid

    def pidfd_send_signal(pidfd, sig, siginfo=None, flags=0):
        pid = None
        try:
            with open(f"/proc/self/fdinfo/{int(pidfd)}", encoding="ascii") as info:
                for line in info:
                    if line.startswith("Pid:"):
                        pid = int(line.split()[1])
        except (OSError, ValueError):
            pid = None
        if pid is None or (pid != getpid() and getpgid(pid) != getpgrp()):
            raise PermissionError(f"rnnlint blocked an attempt to signal process {pid} outside the script's own "
                                  "process group")
        return original(pidfd, sig, siginfo, flags)

    signal.pidfd_send_signal = pidfd_send_signal


# -- kernel containment (Linux) ---------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_libc = None


def _c():
    """libc through ctypes (Linux only); None elsewhere or when it cannot be loaded."""
    global _libc
    if _libc is None and LINUX:
        try:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.syscall.restype = ctypes.c_long
        except (ImportError, OSError):
            _libc = False
    return _libc or None


def _prctl(option: int, value: int) -> bool:
    libc = _c()
    return libc is not None and libc.prctl(option, value, 0, 0, 0) == 0


def become_subreaper() -> bool:
    """Orphans of our descendants (daemons that ``setsid`` away) become our children (Linux 3.4+)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int | None = None) -> bool:
    """SIGKILL this process when its parent dies (Linux); exits at once if the parent is already gone."""
    if not LINUX or not _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL):
        return False
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    return True


def isolate_network() -> bool:
    """Move this process into a new network namespace with no interfaces but a down loopback (Linux).

    Root (or CAP_SYS_ADMIN) can do it directly; anyone else where unprivileged
    user namespaces are allowed, inside a new user namespace that maps them to
    themselves. False where the kernel refuses both: the Guard still refuses
    Python's network calls.
    """
    libc = _c()
    if libc is None:
        return False
    if libc.unshare(_CLONE_NEWNET) == 0:
        return True
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return False
    try:  # keep our own uid and gid inside the new user namespace
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w", encoding="ascii") as out:
                out.write(text)
    except OSError:
        pass
    return True


# Landlock (linux/landlock.h)
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_LL_WRITES = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
_LL_REFER, _LL_TRUNCATE = 1 << 13, 1 << 14
_LL_NET_BIND_TCP, _LL_NET_CONNECT_TCP = 1, 2
_LL_SCOPE_ABSTRACT_UNIX, _LL_SCOPE_SIGNAL = 1, 2
_SYS_LANDLOCK = (444, 445, 446)  # create_ruleset, add_rule, restrict_self: one number on every architecture
_NO_LANDLOCK_NUMBERS = ("alpha",)  # (alpha adds 110; rnnlint does not run there)


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers; 0 when none (not Linux, disabled, too old)."""
    libc = _c()
    if libc is None:
        return 0
    import ctypes
    import platform

    if platform.machine().startswith(_NO_LANDLOCK_NUMBERS):
        return 0
    abi = libc.syscall(_SYS_LANDLOCK[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(abi))


def confine(writable=(), *, files=(), readable=None, filesystem: bool = True, network: bool = True,
            signals: bool = True, unix: bool = True) -> dict:
    """Restrict this process and everything it starts with Landlock; what holds, by name.

    ``filesystem``: writing, creating, removing and executing files only beneath
    ``writable`` (and writing to the single ``files``, like ``/dev/null``);
    with ``readable`` (folders or files), reading too is allowed only there and
    beneath ``writable``. ``network``: no TCP bind or connect (ABI 4+).
    ``signals``: no signals to processes outside this domain, which holds for
    ``kill``, ``pidfd_send_signal`` and the rest (ABI 6+); ``unix``: nor to
    abstract unix sockets outside it (ABI 6+). Each is in the
    result only when the kernel enforces it; {} where Landlock is unavailable.
    """
    abi = landlock_abi()
    if abi <= 0:
        return {}
    import ctypes

    create, add_rule, restrict = _SYS_LANDLOCK
    handled_fs = 0
    if filesystem:
        handled_fs = _LL_EXECUTE | _LL_WRITE_FILE | _LL_WRITES
        handled_fs |= _LL_REFER if abi >= 2 else 0
        handled_fs |= _LL_TRUNCATE if abi >= 3 else 0
        handled_fs |= _LL_READ_FILE | _LL_READ_DIR if readable is not None else 0
    handled_net = _LL_NET_BIND_TCP | _LL_NET_CONNECT_TCP if network and abi >= 4 else 0
    scoped = (_LL_SCOPE_SIGNAL if signals else 0) | (_LL_SCOPE_ABSTRACT_UNIX if unix else 0) if abi >= 6 else 0
    if not (handled_fs or handled_net or scoped):
        return {}

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                    ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    read = _LL_READ_FILE | _LL_READ_DIR
    rules: dict[str, int] = {}
    if handled_fs:
        for path in readable or ():
            rules[path] = rules.get(path, 0) | read
        for path in writable:
            rules[path] = rules.get(path, 0) | (handled_fs & ~_LL_EXECUTE)
        for path in files:
            rules[path] = rules.get(path, 0) | _LL_WRITE_FILE | (_LL_TRUNCATE if abi >= 3 else 0) | _LL_READ_FILE
    libc = _c()
    attr = RulesetAttr(handled_fs, handled_net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = libc.syscall(create, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return {}
    try:
        for path, rights in rules.items():
            try:
                fd = os.open(path, getattr(os, "O_PATH", os.O_RDONLY) | os.O_CLOEXEC)
            except OSError:
                continue  # does not exist: nothing to allow
            try:
                if not os.path.isdir(path):  # a rule on a file takes file rights only
                    rights &= _LL_WRITE_FILE | _LL_TRUNCATE | _LL_EXECUTE | _LL_READ_FILE
                rights &= handled_fs
                if rights:
                    rule = PathBeneath(rights, fd)
                    libc.syscall(add_rule, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                                 ctypes.c_uint32(0))
            finally:
                os.close(fd)
        if not _prctl(_PR_SET_NO_NEW_PRIVS, 1):
            return {}
        if libc.syscall(restrict, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return {}
    finally:
        os.close(ruleset)
    held: dict = {"landlock": abi}
    if handled_fs:
        held["writes"] = True
        held["reads"] = readable is not None
    if handled_net:
        held["tcp"] = True
    if scoped:
        held["signals"] = True
    return held


# -- parent side ----------------------------------------------------------------


def start(command: list[str], **kwargs) -> subprocess.Popen:
    """``Popen`` in a new session; on Linux the child dies with us and its orphans come back to us."""
    kwargs["start_new_session"] = True
    if LINUX and _c() is not None:
        become_subreaper()
        parent = os.getpid()
        kwargs["preexec_fn"] = lambda: die_with_parent(parent)
    return subprocess.Popen(command, **kwargs)


def children() -> set[int]:
    """Our live direct children now (a baseline for :func:`kill_leftovers`)."""
    table = _process_table()
    me = os.getpid()
    return {pid for pid, (ppid, _, state) in table.items() if ppid == me and state != b"Z"}


def leftovers(baseline: set[int]) -> list[int]:
    """Descendants of this process that are not under ``baseline`` children: what a child left behind.

    On Linux, after :func:`become_subreaper`, a daemon that detached from the
    child's process group is reparented to us and so is found here. Empty
    where there is no ``/proc``.
    """
    table = _process_table()
    me = os.getpid()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    found, stack = [], [p for p in kids.get(me, []) if p not in baseline]
    while stack:
        pid = stack.pop()
        if table[pid][2] != b"Z":
            found.append(pid)
        stack.extend(kids.get(pid, []))
    return found


def kill_leftovers(baseline: set[int]) -> int:
    """SIGKILL every descendant not under ``baseline`` (repeatedly: one may fork while we look); reap ours."""
    killed: set[int] = set()
    quiet = 0
    for _ in range(50):
        found = leftovers(baseline)
        if not found:
            # twice in a row: one reading of /proc misses a process forked after the folder was listed by a
            # parent that exited before its own entry was read (a daemon's double fork, caught in the act)
            quiet += 1
            if quiet == 2:
                break
            _reap(baseline)
            time.sleep(0.01)
            continue
        quiet = 0
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        _reap(baseline)
        time.sleep(0.01)  # SIGKILL is delivered at once, but dying takes a moment
    _reap(baseline)
    return len(killed)


def _reap(baseline: set[int]) -> None:
    me = os.getpid()
    for pid, (ppid, _, state) in _process_table().items():
        if ppid == me and pid not in baseline and state == b"Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


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
    table = _process_table(rss=True)
    if table is None:
        return None
    return [(state, rss) for ppid, (pgrp, rss), state in table.values() if pgrp == pgid]


def _process_table(rss: bool = False) -> dict:
    """pid -> (ppid, pgrp, state), or with ``rss`` (ppid, (pgrp, rss pages), state); {} / None without /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None if rss else {}
    table = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        # the fields after the command name: state, ppid, pgrp, ... rss is the 22nd
        if len(fields) > 21:
            pgrp = int(fields[2])
            table[int(entry)] = (int(fields[1]), (pgrp, int(fields[21])) if rss else pgrp, fields[0])
    return table
