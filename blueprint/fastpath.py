"""The no-op render, proven cheaply.

After a render that left the disk equal to the plan, blueprint records a stamp: a fingerprint of
every input (the config's bytes, blueprint's own code and templates, the Python running it, the
directories, the secret store, the environment variables a `${VAR}` may be taken from, the podman
binary when its version is detected) and the identity of every output file (inode, size, mtime and
ctime: an edit changes ctime, which no tool can set back). When a later `render` or `apply` finds
all of it unchanged, the full pipeline would produce the same bytes and write nothing, so it stops
before importing Click, Jinja, jsonschema or PyYAML. Anything it cannot prove sends it down the
full path, which stays the only one that writes.

This module must stay cheap to import: the standard library's lightest parts only.
"""

from __future__ import annotations

import json
import os
import sys
from hashlib import sha256

from blueprint import __version__
from blueprint.paths import PACKAGE_DIR, Paths, config_file, resource

STAMP_VERSION = 2


def which(name: str, environ) -> str | None:
    for folder in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def _identity(path) -> list[int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]


def _tree(root) -> list:
    """Identities of the files blueprint is made of (code, templates, schema)."""
    found = []
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name == "__pycache__":
                continue
            if entry.is_dir():
                stack.append(entry.path)
            else:
                st = entry.stat()
                found.append([entry.path, st.st_size, st.st_mtime_ns])
    return found


def _inputs(config_path: str, environ, external: list[str], probe_podman: bool) -> dict | None:
    try:
        with open(config_path, "rb") as handle:
            config_hash = sha256(handle.read()).hexdigest()
    except OSError:
        return None
    paths = Paths.from_env(environ)
    env = "\0".join(f"{name}={environ.get(name, '')}" for name in external)
    return {
        "version": __version__,
        "code": [_tree(PACKAGE_DIR), _tree(resource("njk")), _tree(resource("schemas"))],
        "python": sys.executable,
        "config": [os.path.abspath(config_path), config_hash],
        "dirs": [str(paths.home), str(paths.config_home), str(paths.data_home), str(paths.state_home)],
        "store": _identity(paths.secret_store),
        "env": sha256(env.encode()).hexdigest(),
        "podman": _identity(which("podman", environ)) if probe_podman else None,
    }


def stamp(prepared) -> dict:
    """The stamp of a render that has just made the disk equal to the plan."""
    options = prepared.options
    external = list(prepared.resolution.from_environment)
    probe = prepared.loaded.data["podman_version"] == "auto"
    return {
        "stamp": STAMP_VERSION,
        "external": external,
        "probe_podman": probe,
        "inputs": _inputs(str(prepared.config_file), options.environ, external, probe),
        "outputs": {str(f.path): _identity(f.path) for f in prepared.planned},
    }


def _parse(args: list[str], allowed_flags: set[str]) -> str | None | bool:
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


def up_to_date(argv: list[str], environ=None) -> int | None:
    """For `render` / `apply` with no other options: the number of files, if nothing would change."""
    environ = os.environ if environ is None else environ
    command, args = argv[0], argv[1:]
    config = _parse(args, {"--no-restart"} if command == "apply" else set())
    if config is False:
        return None
    try:
        with open(Paths.from_env(environ).manifest, "rb") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    saved = manifest.get("stamp") if isinstance(manifest, dict) else None
    if not isinstance(saved, dict) or saved.get("stamp") != STAMP_VERSION:
        return None
    if command == "apply" and manifest.get("pending"):
        return None
    path, _ = config_file(config, environ)
    inputs = _inputs(str(path), environ, saved.get("external", []), saved.get("probe_podman", True))
    # JSON turns tuples into lists and keys into strings; compare in that form.
    if inputs is None or json.loads(json.dumps(inputs)) != saved.get("inputs"):
        return None
    outputs = saved.get("outputs", {})
    for path_name, identity in outputs.items():
        if _identity(path_name) != identity:
            return None
    return len(outputs)
