"""Writing files that live programs read: atomically, with the right mode, or not at all."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path
from typing import BinaryIO

from blueprint.reading import read_bytes


def digest(data: bytes) -> str:
    return sha256(data).hexdigest()


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
        # Left by a blueprint killed before it removed them; callers hold the state lock (locking.lock).
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


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
