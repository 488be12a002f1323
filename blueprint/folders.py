"""The folders blueprint writes into: made with the mode it means whatever the umask, and checked
before the first write, so that a render that cannot write stops there, naming the folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from blueprint.errors import SetupError
from blueprint.paths import check_relative


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
