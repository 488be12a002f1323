"""The no-op render, and the top-level help, proven cheaply.

After a render that left the disk equal to the plan, blueprint writes a stamp: a fingerprint of
every input (the config's bytes, blueprint's own code and templates, the command the backup timers
run, the directories, the secret store, the environment variables a `${VAR}` may be taken from, the
podman binary when its version is detected) and the identity of every output file (inode, size,
mtime and ctime: an edit changes ctime, which no tool can set back). When a later `render` or
`apply` finds all of it unchanged, the full pipeline would produce the same bytes and write
nothing, so it stops before importing Click, Jinja, jsonschema or PyYAML. Anything it cannot prove
sends it down the full path, which stays the only one that writes.

This module must stay cheap to import: no json (the stamp is plain lines), no dataclasses.
"""

from __future__ import annotations

import os
import sys
from hashlib import sha256

from blueprint import __version__
from blueprint.paths import PACKAGE_DIR, Paths, config_file, own_command, resource

STAMP_VERSION = "blueprint-stamp 3"


def which(name: str, environ) -> str | None:
    """shutil.which, without importing shutil (a fifth of this module's import time)."""
    for folder in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def _identity(path) -> tuple[int, ...] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _tree(root) -> list:
    """Identities of the files blueprint is made of (code, templates, schema)."""
    found = []
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name == "__pycache__":
                continue
            if entry.is_dir():
                folders.append(entry.path)
            else:
                st = entry.stat()
                found.append((entry.path, st.st_size, st.st_mtime_ns))
    return found


def fingerprint(config_path, environ, external, probe_podman: bool) -> str | None:
    """One hash over every input of a render; None if the config cannot be read."""
    try:
        with open(config_path, "rb") as handle:
            config_hash = sha256(handle.read()).hexdigest()
    except OSError:
        return None
    paths = Paths.from_env(environ)
    inputs = (
        __version__,
        _tree(PACKAGE_DIR),
        _tree(resource("njk")),
        _tree(resource("schemas")),
        own_command(),
        os.path.abspath(config_path),
        config_hash,
        str(paths.home),
        str(paths.config_home),
        str(paths.data_home),
        str(paths.state_home),
        _identity(paths.secret_store),
        [(name, environ.get(name, "")) for name in external],
        _identity(which("podman", environ)) if probe_podman else None,
    )
    return sha256(repr(inputs).encode()).hexdigest()


def write_stamp(prepared, *, pending: bool) -> None:
    """Record a render that has just made the disk equal to the plan."""
    from blueprint.files import write_atomic

    options = prepared.options
    external = list(prepared.resolution.from_environment)
    probe = prepared.loaded.data["podman_version"] == "auto"
    lines = [
        STAMP_VERSION,
        f"fingerprint {fingerprint(prepared.config_file, options.environ, external, probe)}",
        f"external {' '.join(external)}",
        f"probe {int(probe)}",
        f"pending {int(pending)}",
    ]
    for file in prepared.planned:
        identity = _identity(file.path)
        lines.append("file " + " ".join(map(str, identity)) + f" {file.path}")
    write_atomic(options.paths.stamp, ("\n".join(lines) + "\n").encode(), 0o600)


def up_to_date(argv: list[str], environ=None) -> int | None:
    """For `render` / `apply` with no other options: the number of files, if nothing would change."""
    environ = os.environ if environ is None else environ
    command, args = argv[0], argv[1:]
    config = _parse(args, {"--no-restart"} if command == "apply" else set())
    if config is False:
        return None
    try:
        with open(Paths.from_env(environ).stamp, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != STAMP_VERSION:
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:5] if " " in line)
    if command == "apply" and fields.get("pending") != "0":
        return None
    path, _ = config_file(config, environ)
    expected = fingerprint(str(path), environ, fields.get("external", "").split(), fields.get("probe") == "1")
    if expected is None or fields.get("fingerprint") != expected:
        return None
    files = lines[5:]
    for line in files:
        _, ino, size, mtime, ctime, mode, name = line.split(" ", 6)
        if _identity(name) != (int(ino), int(size), int(mtime), int(ctime), int(mode)):
            return None
    return len(files)


def _parse(args: list[str], allowed_flags: set[str]):
    """--config PATH (or --config=PATH, -c PATH) and the given flags; False for anything else."""
    config = None
    rest = iter(args)
    for arg in rest:
        if arg in ("--config", "-c"):
            config = next(rest, None)
            if config is None:
                return False
        elif arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        elif arg not in allowed_flags:
            return False
    return config


# ---- the top-level help ----------------------------------------------------------------------


def _help_file(environ) -> str:
    """Where Click's rendering of `blueprint --help` is kept, keyed on what shapes it."""
    columns = environ.get("COLUMNS", "")
    if not columns.isdigit():
        try:
            columns = str(os.get_terminal_size(sys.__stdout__.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            columns = "80"
    # The help is written by the cli package: any change to it renders the help anew.
    cli = sha256(repr(_tree(os.path.join(PACKAGE_DIR, "cli"))).encode()).hexdigest()[:16]
    return os.path.join(Paths.from_env(environ).cache_dir, f"help-{__version__}-{cli}-{columns}.txt")


def cached_help(environ=None) -> str | None:
    try:
        with open(_help_file(os.environ if environ is None else environ), encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def keep_help(text: str, environ=None) -> None:
    """Remember Click's help text; a cache that cannot be written is simply not used."""
    path = _help_file(os.environ if environ is None else environ)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        pass
