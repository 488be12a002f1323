"""Writing files that live programs read: atomically, with the right mode, or not at all."""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path
from typing import BinaryIO

from blueprint.errors import SetupError, ToolError
from blueprint.paths import check_relative
from blueprint.reading import read_bytes


def digest(data: bytes) -> str:
    return sha256(data).hexdigest()


def ensure_dir(path: Path, mode: int = 0o755) -> None:
    """Create a directory and its missing parents, each with `mode` set explicitly, whatever the
    umask (under umask 000 mkdir alone would make them writable by everyone). A private directory
    (no bits for others) is made private even if it existed; a parent that existed is never
    changed. A folder that cannot be made or written is refused first (check_folder)."""
    check_folder(path, write=True)
    _make(path, mode)
    if mode & 0o077 == 0 and path.stat().st_mode & 0o077:
        path.chmod(mode)


MAKE_TRIES = 5  # a parent removed under us this often is no longer a race: something removes it


def _make(path: Path, mode: int, tries: int = MAKE_TRIES) -> None:
    if path.is_dir():
        return
    _make(path.parent, mode)
    try:
        path.mkdir()
    except FileExistsError:
        check_folder(path)  # made meanwhile (fine), or a file made meanwhile
        return
    except FileNotFoundError:
        # Its parent was removed meanwhile (a lock released took its emptied folder): made again. A
        # parent that is there and still says "no such file" takes no folders at all (/proc, /sys).
        if tries > 1 and not path.parent.is_dir():
            _make(path, mode, tries - 1)
            return
        check_relative(path)
        raise SetupError(
            f"{path}: cannot be made: {path.parent} takes no new folders",
            hint="choose a folder on an ordinary file system",
        ) from None
    path.chmod(mode)


def check_folder(folder: Path, *, write: bool = False) -> None:
    """Refuse a folder that is not one, or (with write) one blueprint could not write files in or
    create: so that a render stops before its first write, naming the folder, rather than on the
    Nth file with the name of a temp file. The folder need not exist: its nearest existing parent
    is what must be a folder, and writable."""
    existing, info = _nearest_existing(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise SetupError(
            f"{existing}: not a folder",
            hint="blueprint keeps files in it: move that file away, then run this again",
        )
    if write and not os.access(existing, os.W_OK | os.X_OK):
        why = "its file system is mounted read-only" if _read_only_mount(existing) else "this user may not write in it"
        what = "cannot be written" if existing == folder else f"cannot be written, so {folder} cannot be made"
        raise SetupError(
            f"{existing}: {what} ({why})",
            hint="make it writable (remount it read-write, or fix its owner and mode), then run this again",
        )


def check_file(path: Path) -> None:
    """Refuse a file blueprint is about to write where a folder stands (a rename cannot replace
    one), naming it, before the first write."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there yet, or a file in the way of its folder (check_folder names it)
    if stat.S_ISDIR(info.st_mode):
        raise SetupError(
            f"{path}: a folder where blueprint keeps a file",
            hint="move that folder away, then run this again",
        )


def _nearest_existing(folder: Path) -> tuple[Path, os.stat_result]:
    """The folder, or its nearest parent that exists, and what it is (a symbolic link followed)."""
    probe = folder
    while True:
        try:
            return probe, os.stat(probe)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.lexists(probe):
                return probe, os.lstat(probe)  # a symbolic link to nothing
            if probe == probe.parent:
                raise
            probe = probe.parent  # missing, or below a file: the file is named, further up


def _read_only_mount(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


@contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file to write that replaces `path` only when the block ends without an error.

    Temp file in the same directory, created with its final mode before any byte is written,
    fsynced, renamed over the target, and the directory fsynced (the rename is what makes it
    durable): a reader, or a crash, sees the old file or the new one, never a part. The temp name
    starts with a dot and has no unit suffix, so Quadlet never picks it up.
    """
    with _temp_file(path, mode) as (tmp, handle):
        yield handle
        _sync(handle)
        os.replace(tmp, path)
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`, atomically (see atomic_output)."""
    with atomic_output(path, mode) as handle:
        handle.write(data)


def write_if_unchanged(path: Path, data: bytes, mode: int, expected: bytes | None) -> bool:
    """Replace `path` with `data` atomically, but only if it still holds `expected` (None: there is no
    file); False, with the file left as it is, if someone changed it since it was read.

    A person editing a unit takes no lock, so the check has to be part of the rename: the temp file
    is written and fsynced first (the slow part), the target read again just before the rename,
    and the rename is an exchange, so what it replaced can be checked afterwards and put back if it
    was edited at that very moment. A new file is linked into place, which never replaces one that
    appeared meanwhile. At every instant the target is a whole file, old or new.
    """
    with _temp_file(path, mode) as (tmp, handle):
        handle.write(data)
        _sync(handle)
        placed = _create(tmp, path) if expected is None else _swap(tmp, path, expected)
    if placed:
        fsync_dir(path.parent)
    return placed


@contextmanager
def _temp_file(path: Path, mode: int) -> Iterator[tuple[Path, BinaryIO]]:
    """A new temp file beside `path`, with `mode`; removed when the block ends, whatever happens
    (a block that renamed it away leaves nothing to remove)."""
    directory = path.parent
    for stale in directory.glob(f".{path.name}.*.tmp"):
        # Left by a blueprint killed before it removed them; callers hold the state lock (lock()).
        stale.unlink(missing_ok=True)
    tmp = _temp_name(path)
    # O_EXCL: never follow or reuse something already there.
    # Opened for reading too, so a writer can check what it wrote before the rename.
    handle = os.fdopen(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), "w+b")
    try:
        with handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed the mode given to open()
            yield tmp, handle
    finally:
        tmp.unlink(missing_ok=True)


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS}  # link(2) on a file system without hard links


def _create(tmp: Path, path: Path) -> bool:
    """Put `tmp` at `path` only if nothing is there: link(2) fails rather than replace a file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        if os.path.lexists(path):  # a file system without hard links: check, then rename
            return False
        os.replace(tmp, path)
    return True


def _swap(tmp: Path, path: Path, expected: bytes) -> bool:
    """Exchange `tmp` and `path` if `path` holds `expected`; exchange them back if, at the instant of
    the exchange, it no longer did. `tmp` then holds what is not kept, for the caller to remove."""
    if read_bytes(path) != expected:
        return False
    try:
        _exchange(tmp, path)
    except FileNotFoundError:
        return False  # removed since the check
    except OSError as exc:
        if exc.errno not in _NO_EXCHANGE:
            raise
        return _replace_keeping(tmp, path, expected)
    if tmp.read_bytes() != expected:
        _exchange(tmp, path)  # the edit goes back where it was made
        return False
    return True


def _replace_keeping(tmp: Path, path: Path, expected: bytes) -> bool:
    """For a file system without an atomic exchange (NFS, some FUSE): keep a hard link to the file
    checked, rename over it, and check the kept file again. An edit written into the file between
    the check and the rename is then seen, and the edited file put back; an edit saved under the
    same name by a rename in that window (microseconds) cannot be seen here."""
    keep = _temp_name(path)  # a temp name: a run killed before it removes it leaves it to the next
    try:
        os.link(path, keep)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        os.replace(tmp, path)  # no hard links either: the check just made is the last one
        return True
    try:
        if keep.read_bytes() != expected:
            return False
        os.replace(tmp, path)
        if keep.read_bytes() != expected:
            os.replace(keep, path)
            return False
        return True
    finally:
        keep.unlink(missing_ok=True)


# renameat2(2): its flag (linux/fs.h), and the errors of a kernel, C library or file system that
# cannot exchange two names.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def _exchange(a: Path, b: Path) -> None:
    """Swap two names atomically: renameat2(2) with RENAME_EXCHANGE (Linux 3.15, glibc 2.28)."""
    renameat2, get_errno = _renameat2()
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = get_errno()
        raise OSError(code, os.strerror(code), str(b))


@functools.cache
def _renameat2():
    """Python has no binding for renameat2, hence ctypes, loaded only by a write that needs it."""
    import ctypes

    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        raise OSError(errno.ENOSYS, "renameat2 is not in this C library")
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    return function, ctypes.get_errno


LOCK_WAIT = 600  # seconds: an apply restarting services behind health checks takes minutes
_held: set[Path] = set()  # the locks this process holds


def _say_waiting(holder: str) -> None:
    sys.stderr.write(f"blueprint: waiting for another blueprint{holder} to finish writing\n")


@contextmanager
def lock(path: Path, *, wait: float = LOCK_WAIT, waiting: Callable[[str], None] = _say_waiting):
    """Hold the exclusive lock on `path` (created if needed): one blueprint writes at a time.

    Every command that writes holds it from its first read of the store and the disk to its
    last write, so two runs never interleave. A second run waits for the first (and says so),
    up to `wait` seconds. The lock file holds the holder's PID, to name it. Taken again in the
    process that holds it (a command made of others, such as upgrade), it is simply still held.

    The lock file, and the folders made for it if nothing else was put in them, are removed on
    release: a command refused before it wrote (a config error) leaves nothing behind. A run that
    waited on a removed lock file sees it is no longer the one at `path`, and takes that one.
    """
    if path in _held:
        yield
        return
    made = _missing(path.parent)
    fd = _acquire(path, time.monotonic() + wait, _Waiting(path, wait, waiting))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held.add(path)
        try:
            yield
        finally:
            _held.discard(path)
    finally:
        _release(path, fd, made)


class _Waiting:
    """Says once that a run waits for another, and gives up at the deadline, naming the holder."""

    def __init__(self, path: Path, wait: float, say: Callable[[str], None]) -> None:
        self.path, self.wait, self.say, self.told = path, wait, say, False

    def __call__(self, fd: int, deadline: float) -> None:
        pid = os.pread(fd, 16, 0).decode("ascii", "replace").strip()
        if not self.told:
            self.say(f" (pid {pid})" if pid.isdigit() else "")
            self.told = True
        if time.monotonic() > deadline:
            raise ToolError(
                f"{self.path}: another blueprint has been writing for {self.wait:.0f} s",
                hint=f"see what it does (ps -p {pid}); run this again when it is done",
            ) from None
        time.sleep(0.05)


def _acquire(path: Path, deadline: float, waiting: _Waiting) -> int:
    """An open descriptor of the lock file at `path`, locked by this process."""
    while True:
        try:
            ensure_dir(path.parent, 0o700)
            # O_NONBLOCK: a FIFO put there must not block the open (it is refused just below).
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        except FileNotFoundError:
            continue  # its folder was removed meanwhile by a holder releasing it: made again
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.ELOOP):  # a folder, a symbolic link
                raise
            raise _not_a_lock(path) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _not_a_lock(path)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waiting(fd, deadline)
            if _is_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it on release: lock the file now at `path`


def _not_a_lock(path: Path) -> SetupError:
    return SetupError(
        f"{path}: not a regular file; blueprint keeps its lock there",
        hint="move what is there away, then run this again",
    )


def _is_at(fd: int, path: Path) -> bool:
    try:
        found = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino)


def _missing(folder: Path) -> list[Path]:
    """The folder and its parents that do not exist yet, the deepest first."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _release(path: Path, fd: int, made: list[Path]) -> None:
    """Remove the lock file (still holding it, so no one takes it meanwhile), then the folders made
    for it that nothing else was put in, then let go."""
    try:
        path.unlink(missing_ok=True)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: a render wrote its manifest there, or another run made it
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
