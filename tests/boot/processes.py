"""The booted machine's processes, as the harness (harness.py) starts, waits for and ends them: commands
run with their output kept, liveness read from /proc, a subreaper to collect what a namespace
leaves behind, and a read-only mount attached inside another mount namespace."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


class BootError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"boot: {message}", file=sys.stderr, flush=True)


class Result(subprocess.CompletedProcess):
    """A finished command, shown by its own words rather than the nsenter/setpriv/systemd-run prefix."""

    def __init__(self, shown: Sequence[str], done: subprocess.CompletedProcess) -> None:
        super().__init__(done.args, done.returncode, done.stdout, done.stderr)
        self.shown = " ".join(shown)

    def __repr__(self) -> str:
        return f"Result({self.shown!r}, returncode={self.returncode})"


def run(
    command: Sequence[str],
    *,
    shown: Sequence[str] | None = None,
    input: str | None = None,
    stdin=None,
    check: bool = True,
    timeout: float | None = 600,
    capture: bool = True,
    cwd: Path | None = None,
) -> Result:
    """Run COMMAND, text in and out. SHOWN is how errors and reprs name it (default: COMMAND).
    A failure with check=True raises BootError with its output."""
    if input is None and stdin is None and capture:
        stdin = subprocess.DEVNULL
    done = subprocess.run(
        list(command),
        input=input,
        stdin=stdin,
        capture_output=capture,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    result = Result(shown or command, done)
    if check and result.returncode != 0:
        tail = ((result.stderr or "") + (result.stdout or "")).strip()[-1500:]
        raise BootError(f"`{result.shown}` exited {result.returncode}:\n{tail}")
    return result


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def zombie_children() -> set[int]:
    """This process's children that have exited and wait to be reaped."""
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                found.add(int(entry.name))
    return found


def set_subreaper(on: bool) -> None:
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)


def attach_read_only(source: str, pid: str) -> None:
    """Attach SOURCE read-only at /project inside the namespace of PID.

    Host paths are gone after pivot_root, and mount(2) will not bind a path across mount
    namespaces. The new mount API can: open_tree(OPEN_TREE_CLONE) makes a detached copy of the
    mount here, mount_setattr makes it read-only, and after setns() into the namespace move_mount
    attaches it. (Syscall numbers 424 and up are the same on every architecture.)
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def syscall(number: int, *args) -> int:
        result = libc.syscall(ctypes.c_long(number), *args)
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syscall {number}: {os.strerror(code)}")
        return result

    AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
    OPEN_TREE_CLONE, MOUNT_ATTR_RDONLY, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x1, 0x4
    OPEN_TREE, MOVE_MOUNT, MOUNT_SETATTR = 428, 429, 442
    tree = syscall(
        OPEN_TREE, ctypes.c_int(AT_FDCWD), source.encode(), ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | AT_RECURSIVE)
    )
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)  # struct mount_attr: set, clr, propagation, userns
    syscall(
        MOUNT_SETATTR,
        ctypes.c_int(tree),
        b"",
        ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE),
        attr,
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    if libc.setns(namespace, 0x20000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "setns")
    syscall(
        MOVE_MOUNT, ctypes.c_int(tree), b"", ctypes.c_int(AT_FDCWD), b"/project", ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)
    )
