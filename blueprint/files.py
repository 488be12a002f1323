"""Writing files that live programs read: atomically, with the right mode, or not at all."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path
from typing import BinaryIO

from blueprint.errors import ToolError


def digest(data: bytes) -> str:
    return sha256(data).hexdigest()


def ensure_dir(path: Path, mode: int = 0o755) -> None:
    """Create a directory and its missing parents, each with `mode` set explicitly, whatever the
    umask (under umask 000 mkdir alone would make them writable by everyone). A private directory
    (no bits for others) is made private even if it existed; a parent that existed is never
    changed."""
    _make(path, mode)
    if mode & 0o077 == 0 and path.stat().st_mode & 0o077:
        path.chmod(mode)


def _make(path: Path, mode: int) -> None:
    if path.is_dir():
        return
    _make(path.parent, mode)
    try:
        path.mkdir()
    except FileExistsError:
        return  # made meanwhile, or a file: the caller's write says which
    path.chmod(mode)


@contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file to write that replaces `path` only when the block ends without an error.

    Temp file in the same directory, created with its final mode before any byte is written,
    fsynced, renamed over the target, and the directory fsynced (the rename is what makes it
    durable): a reader, or a crash, sees the old file or the new one, never a part. The temp name
    starts with a dot and has no unit suffix, so Quadlet never picks it up.
    """
    directory = path.parent
    for stale in directory.glob(f".{path.name}.*.tmp"):
        # Left by a blueprint killed before its rename; callers hold the state lock (lock()).
        stale.unlink(missing_ok=True)
    tmp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    # O_EXCL: never follow or reuse something already there.
    # Opened for reading too, so a writer can check what it wrote before the rename.
    handle = os.fdopen(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), "w+b")
    try:
        with handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed the mode given to open()
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`, atomically (see atomic_output)."""
    with atomic_output(path, mode) as handle:
        handle.write(data)


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
    """
    if path in _held:
        yield
        return
    ensure_dir(path.parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid = os.pread(fd, 16, 0).decode("ascii", "replace").strip()
                if not told:
                    waiting(f" (pid {pid})" if pid.isdigit() else "")
                    told = True
                if time.monotonic() > deadline:
                    raise ToolError(
                        f"{path}: another blueprint has been writing for {wait:.0f} s",
                        hint=f"see what it does (ps -p {pid}); run this again when it is done",
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held.add(path)
        try:
            yield
        finally:
            _held.discard(path)
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
