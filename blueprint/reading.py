"""Reading a file: a regular file only, never more bytes than a limit.

Every file blueprint reads (a config, a backup, the secret store, its own state and outputs) may
have been replaced by something else: a FIFO would block the read (holding the lock) until a writer
came, /dev/zero or a huge file would fill the memory, a folder would fail with a file descriptor for
a name. So a file is opened without waiting (O_NONBLOCK), checked to be a regular file before any
byte is read, and read up to a limit.

This module must stay cheap to import: the fast path (fastpath.py) reads through it.
"""

from __future__ import annotations

import os
import stat

from blueprint.errors import FileRefused

MAX_CONFIG = 64 * 1024 * 1024  # bytes: a config, or a secret store; a config with 10,000 models is about 1 MB
# What blueprint reads back of the files it writes: litellm.yaml, the largest, spells out a
# config's models in more bytes than the config does.
MAX_FILE = 4 * MAX_CONFIG

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


def open_regular(path, *, label: str | None = None, follow: bool = True):
    """The regular file at `path`, open for reading in binary; FileRefused for anything else
    (naming `label`, default the path), FileNotFoundError if there is none. Without `follow`, a
    symbolic link is refused too (ELOOP, an OSError)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except NotADirectoryError:
        from pathlib import Path

        from blueprint.folders import check_folder

        check_folder(Path(path).parent)  # names the file that stands where a folder belongs
        raise
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            raise FileRefused(label or str(path), f"not a regular file ({_KINDS.get(kind, 'a special file')})")
        # Checked before fdopen, which refuses a folder naming the descriptor, not the path. For a
        # regular file O_NONBLOCK changes nothing: reads need not be retried.
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, limit: int, *, label: str | None = None, follow: bool = True) -> bytes:
    """The bytes of the regular file at `path` (see open_regular); FileRefused if it holds more
    than `limit`."""
    with open_regular(path, label=label, follow=follow) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(label or str(path), f"larger than {size(limit)}")
    return data


def read_bytes(path, limit: int = MAX_FILE) -> bytes | None:
    """The bytes of a file blueprint reads back (its outputs, its state); None if there is none.
    Anything but a regular file, or more than `limit` bytes, is refused (read_regular)."""
    try:
        return read_regular(path, limit)
    except FileNotFoundError:
        return None


def size(count: int) -> str:
    """A size as a person reads it."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"
