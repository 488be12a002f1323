"""The state lock: one blueprint writes at a time, from its first read to its last write."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from blueprint.errors import SetupError, ToolError
from blueprint.folders import ensure_dir

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
