"""Writing files that live programs read: atomically, with the right mode, or not at all."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path

from blueprint.errors import ToolError


def digest(data: bytes) -> str:
    return sha256(data).hexdigest()


def ensure_dir(path: Path, mode: int = 0o755) -> None:
    """Create a directory (and its parents); a private one is made private even if it existed."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    if mode & 0o077 == 0 and path.stat().st_mode & 0o077:
        path.chmod(mode)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a reader (or a crash) sees the old file or the new one.

    Temp file in the same directory, written and fsynced with its final mode already set, then
    renamed over the target and the directory fsynced (the rename is what makes it durable).
    The temp name starts with a dot and has no unit suffix, so Quadlet never picks it up.
    """
    directory = path.parent
    for stale in directory.glob(f".{path.name}.*.tmp"):
        # Left by a blueprint killed before its rename; callers hold the state lock (lock()).
        stale.unlink(missing_ok=True)
    tmp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    # O_EXCL: never follow or reuse something already there; the mode is set before any byte.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed the mode given to open()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)


@contextmanager
def lock(path: Path):
    """Hold an exclusive lock on `path` (created if needed): one blueprint writes at a time."""
    ensure_dir(path.parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ToolError(
                f"{path}: another blueprint is writing right now", hint="wait for it to finish, then run this again"
            ) from None
        yield
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
