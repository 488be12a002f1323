"""The no-op render, and the top-level help, proven cheaply.

After a render that left the disk equal to the plan, blueprint writes a stamp of what that render
read: a fingerprint of its inputs (the config's bytes, blueprint's own code, templates and schema,
the command the backup timers run, the directories, the secret store, the environment variables a
`${VAR}` may be taken from, the podman binary when its version is detected), the identity of every
library file it ran (Jinja, PyYAML, jsonschema, ...: an upgrade changes the output), the
identity of every output file, and that of the copy of the config the render keeps (the day-2
commands and the backup timers read it; the fingerprint holds the config's bytes, which the
render made that copy equal to). An identity is inode, size, mtime and ctime: an edit changes ctime,
which no tool can set back. When a later `render` or `apply` finds all of it unchanged, the full
pipeline would produce the same bytes and write nothing, so it stops before importing Click, Jinja,
jsonschema or PyYAML. Anything it cannot prove sends it down the full path, which stays the only
one that writes. With Podman secrets there is no stamp: they live in Podman, which only the full
path asks.

This module must stay cheap to import: no json (the stamp is plain lines), no dataclasses.
"""

from __future__ import annotations

import os
import sys
from hashlib import sha256

from blueprint import __version__
from blueprint.errors import BlueprintError, one_line
from blueprint.paths import PACKAGE_DIR, Paths, config_file, config_line, own_command, resource, which
from blueprint.reading import MAX_CONFIG, MAX_FILE, read_regular

STAMP_VERSION = "blueprint-stamp 5"


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
                found.append((entry.path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return found


def _libraries() -> list[str]:
    """The files of every module this process imported from outside blueprint and the standard
    library: the code a full render ran, whose upgrade may change its output."""
    import sysconfig

    skip = (str(PACKAGE_DIR), sysconfig.get_paths()["stdlib"])
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    return sorted(f for f in files if f and not f.startswith(skip))


def _tailscale_name(environ) -> str | None:
    """What host.tailscale_name says, asked only where tailscale is installed (it runs a command)."""
    if which("tailscale", environ) is None:
        return None
    from blueprint.host import tailscale_name

    return tailscale_name(environ)


def fingerprint(config_path, environ, external, probe_podman: bool, machine_named: bool = False) -> str | None:
    """One hash over every input of a render; None if the config cannot be read."""
    try:
        # A FIFO, a device or too large a config is refused as the full path refuses it.
        config_hash = sha256(read_regular(config_path, MAX_CONFIG)).hexdigest()
        paths = Paths.from_env(environ)
    except (OSError, BlueprintError):
        return None
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
        # The site is named after this machine (host.machine): its name, and the one Tailscale gives
        # it now (tailscaled may have logged in since, with the same binary and socket).
        (os.uname().nodename, _tailscale_name(environ)) if machine_named else None,
    )
    return sha256(repr(inputs).encode()).hexdigest()


def write_stamp(prepared, *, pending: bool) -> None:
    """Record a render that has just made the disk equal to the plan."""
    from blueprint.files import write_atomic
    from blueprint.model.site import needs_machine

    options = prepared.options
    if prepared.stack.secrets_backend == "podman":
        return
    external = list(prepared.resolution.from_environment)
    probe = prepared.loaded.data["podman_version"] == "auto"
    named = needs_machine(prepared.loaded.data)
    lines = [
        STAMP_VERSION,
        f"fingerprint {fingerprint(prepared.config_file, options.environ, external, probe, named)}",
        f"external {' '.join(external)}",
        f"probe {int(probe)} {int(named)}",
        f"pending {int(pending)}",
    ]
    lines += [f"warn {warning}" for warning in prepared.resolution.warnings()]
    kept = ("copy", [options.paths.applied_config])
    for kind, paths in (("file", [f.path for f in prepared.planned]), ("code", _libraries()), kept):
        for path in paths:
            identity = _identity(path)
            if identity is None:
                return  # gone already: nothing to prove a later run against
            lines.append(f"{kind} " + " ".join(map(str, identity)) + f" {path}")
    write_atomic(options.paths.stamp, ("\n".join(lines) + "\n").encode(), 0o600)


def up_to_date(argv: list[str], environ=None) -> int | None:
    """For `render` / `apply` with no other options: the number of files, if nothing would change."""
    environ = os.environ if environ is None else environ
    command, args = argv[0], argv[1:]
    config = _parse(args, {"--no-restart"} if command == "apply" else set())
    if config is False:
        return None
    try:
        lines = read_regular(Paths.from_env(environ).stamp, MAX_FILE).decode("utf-8").split("\n")[:-1]
    except (OSError, UnicodeDecodeError, BlueprintError):
        return None
    if not lines or lines[0] != STAMP_VERSION:
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:5] if " " in line)
    if command == "apply" and fields.get("pending") != "0":
        return None
    path, origin = config_file(config, environ)
    probe, named = [*fields.get("probe", "0 0").split(), "0"][:2]
    expected = fingerprint(str(path), environ, fields.get("external", "").split(), probe == "1", named == "1")
    if expected is None or fields.get("fingerprint") != expected:
        return None
    warnings = [line[5:] for line in lines[5:] if line.startswith("warn ")]
    checked = [line for line in lines[5:] if not line.startswith("warn ")]
    for line in checked:
        _, ino, size, mtime, ctime, mode, name = line.split(" ", 6)
        if _identity(name) != (int(ino), int(size), int(mtime), int(ctime), int(mode)):
            return None
    # Escaped as the CLI's say() escapes: a config named with a newline cannot forge a line.
    sys.stderr.write(f"blueprint: {one_line(config_line(path, origin))}\n")
    for warning in warnings:  # a key still not set is said on every render until it is
        sys.stderr.write(f"blueprint: warning: {one_line(warning)}\n")
    return sum(1 for line in checked if line.startswith("file "))


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


def _help_file(environ) -> str | None:
    """Where Click's rendering of `blueprint --help` is kept, keyed on what shapes it."""
    columns = environ.get("COLUMNS", "")
    if not columns.isdigit():
        try:
            columns = str(os.get_terminal_size(sys.__stdout__.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            columns = "80"
    # The help is written by the cli package: any change to it renders the help anew.
    cli = sha256(repr(_tree(os.path.join(PACKAGE_DIR, "cli"))).encode()).hexdigest()[:16]
    try:
        cache = Paths.from_env(environ).cache_dir
    except BlueprintError:
        return None  # the full path says what is wrong with the environment
    return os.path.join(cache, f"help-{__version__}-{cli}-{columns}.txt")


def cached_help(environ=None) -> str | None:
    path = _help_file(os.environ if environ is None else environ)
    try:
        return read_regular(path, MAX_FILE).decode("utf-8")
    except (OSError, TypeError, UnicodeDecodeError, BlueprintError):
        return None


def keep_help(text: str, environ=None) -> None:
    """Remember Click's help text, private to this user whatever the umask; a cache that cannot
    be written is simply not used."""
    path = _help_file(os.environ if environ is None else environ)
    if path is None:
        return
    # Only when the help is rendered anew: the files module costs the start-up path nothing.
    from pathlib import Path

    from blueprint.files import write_atomic
    from blueprint.folders import ensure_dir

    try:
        ensure_dir(Path(path).parent, 0o700)
        write_atomic(Path(path), text.encode("utf-8"), 0o600)
    except (OSError, BlueprintError):
        pass
