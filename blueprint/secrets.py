"""Secrets: generated once, stored 0600, handed to each container alone, never printed.

The store is one file, $XDG_CONFIG_HOME/blueprint/secrets.env (mode 0600, in a 0700 directory),
holding NAME=value lines: the secrets blueprint generated and the provider keys a person set. Render
only ever adds to it; which value each secret takes (stored, recovered, generated) is resolution.py's.
LiteLLM's salt key encrypts the credentials LiteLLM keeps in PostgreSQL
(https://docs.litellm.ai/docs/proxy/prod), and PostgreSQL keeps the password its data directory was
made with, so neither is ever replaced while the database volume exists.

Every file of NAME=value lines is read and written with one definition of a line (formats.py): a
value can hold no line break of any kind, so no value can add a variable to a file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blueprint.errors import FileRefused, SecretError
from blueprint.files import write_atomic
from blueprint.folders import ensure_dir
from blueprint.formats import CONTROL, env_lines
from blueprint.locking import lock
from blueprint.manifest import Manifest
from blueprint.model.environment import GENERATED
from blueprint.model.types import Stack
from blueprint.paths import Paths
from blueprint.reading import MAX_CONFIG, open_regular, read_bytes, read_regular, size

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
# Redis reads its password from a config line (requirepass), where a blank or a quote would end
# or open a token: printable ASCII without those.
ONE_WORD = re.compile(r"^[!#-&(-\[\]-~]+\Z")
SHAPES = {
    "REDIS_PASSWORD": (ONE_WORD, "Redis reads it as one word of its config: printable ASCII, no blanks, quotes or \\"),
}

# Why some secrets must never change once a deployment uses them.
FROZEN = {
    "LITELLM_SALT_KEY": "LiteLLM encrypts the provider credentials it stores in PostgreSQL with the salt key; "
    "a new salt key makes every stored credential unreadable",
    "POSTGRES_PASSWORD": "PostgreSQL keeps the password its data directory was created with; change it there "
    "first (ALTER ROLE ... PASSWORD), then edit the store by hand",
}

HEADER = (
    "# blueprint's secret store: generated secrets and the keys you set with `blueprint secrets set`.\n"
    "# Mode 0600. Back it up with the database: LITELLM_SALT_KEY is needed to read stored credentials.\n"
)


MAX_SECRET = 64 * 1024  # bytes read from stdin; Podman's own limit for a secret is 500 KB


def read_value(name: str, stream: BinaryIO) -> str:
    """The value of `name` given on stdin: UTF-8 text of at most MAX_SECRET bytes, its one final
    line end taken off (what `echo` and editors add)."""
    raw = stream.read(MAX_SECRET + 1)
    if len(raw) > MAX_SECRET:
        raise SecretError(f"{name}: more than {MAX_SECRET // 1024} KiB on stdin; that is not a key")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretError(f"{name}: stdin is not UTF-8 text (byte {exc.start})") from None
    return text.removesuffix("\n").removesuffix("\r")


def check_value(name: str, value: str, *, document: bool = False) -> str:
    """A value that fits on one line of an environment file, as it is stored: itself, or for a
    secret that holds a JSON document (`document`), that document on one line."""
    if not NAME.match(name):
        raise SecretError(f"{name!r} is not a valid variable name", hint="use letters, digits and _")
    if not value:
        raise SecretError(f"{name}: the value is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SecretError(f"{name}: the value is not valid UTF-8") from None
    if document:
        value = one_line_json(name, value)
    if CONTROL.search(value):
        raise SecretError(
            f"{name}: the value contains a line break or a control character",
            hint="an environment file holds one line per variable",
        )
    if value != value.strip():
        raise SecretError(
            f"{name}: the value starts or ends with whitespace",
            hint="give the key alone, without blanks around it (one final line end is taken off)",
        )
    unfit = misfit(name, value)
    if unfit:
        raise SecretError(f"{name}: this value cannot be used: {unfit}")
    return value


def one_line_json(name: str, value: str) -> str:
    """A JSON document (a service account's key file) on one line: an environment file has no
    other way to hold it, and LiteLLM reads it back the same."""
    try:
        document = json.loads(value)
    except ValueError as exc:
        raise SecretError(
            f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint=f"{name} holds a JSON key file as its provider gives it: blueprint secrets set {name} < key.json",
        ) from None
    if not isinstance(document, dict):
        raise SecretError(
            f"{name}: the JSON is not an object", hint=f"{name} holds a JSON key file, which is one object {{...}}"
        )
    return json.dumps(document, separators=(",", ":"))


def misfit(name: str, value: str) -> str | None:
    """Why the service that reads this secret could not use the value (None: it can)."""
    shape = SHAPES.get(name)
    return shape[1] if shape and not shape[0].match(value) else None


class Store:
    """The secret store file. Values stay in memory; nothing here prints them."""

    def __init__(self, path: Path, values: dict[str, str], exists: bool = True) -> None:
        self.path = path
        self.values = values
        self.exists = exists

    @classmethod
    def load(cls, paths: Paths) -> Store:
        return cls.read(paths.secret_store)

    @classmethod
    def read(cls, path: Path) -> Store:
        """The store at `path` (empty if there is none), made private if someone loosened it."""
        try:
            handle = open_regular(path, follow=False)
        except FileNotFoundError:
            return cls(path, {}, exists=False)
        except OSError:
            if path.is_symlink():
                raise SecretError(
                    f"{path}: is a symbolic link; blueprint keeps secrets in a regular file of its own",
                    hint="replace the link with the file it points to (mode 0600)",
                ) from None
            raise
        with handle:
            if os.fstat(handle.fileno()).st_mode & 0o077:
                os.fchmod(handle.fileno(), 0o600)  # someone loosened it: tighten it before anything else reads it
            raw = handle.read(MAX_CONFIG + 1)
        if len(raw) > MAX_CONFIG:
            raise FileRefused(str(path), f"larger than {size(MAX_CONFIG)}; that is not a secret store")
        return cls.parse(path, raw)

    @classmethod
    def parse(cls, path: Path, raw: bytes, *, label: str | None = None) -> Store:
        """The store held in `raw`, to live at `path`; messages name `label` (default: the path),
        such as the member of a backup it comes from."""
        label = label or str(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise SecretError(
                f"{label}:{line}: not UTF-8 text", hint="fix or remove that line (the value is not shown here)"
            ) from None
        values: dict[str, str] = {}
        lines: dict[str, int] = {}
        for number, name, value in env_lines(text):
            if value is None or not NAME.match(name) or CONTROL.search(value):
                raise SecretError(
                    f"{label}:{number}: not a NAME=value line",
                    hint="fix or remove that line (the value is not shown here)",
                )
            unfit = misfit(name, value)
            if unfit:  # edited by hand: the service would refuse it, and print it in its log
                raise SecretError(
                    f"{label}:{number}: {name} cannot be used: {unfit}",
                    hint=f"set another value with `blueprint secrets set {name}` after removing that line",
                )
            if name in values:  # which one counts would be a guess, and for the salt key a costly one
                raise SecretError(
                    f"{label}:{number}: {name} is set a second time (first on line {lines[name]})",
                    hint="remove one of the two lines, keeping the value in use (the containers' files in the env/ "
                    "folder beside the store hold it); the values are not shown here",
                )
            values[name], lines[name] = value, number
        return cls(path, values)

    def check_values(self, label: str) -> None:
        """Every value as `secrets set` would accept it (one word for Redis, ...): a store read
        from elsewhere (a backup, named by `label`) is checked before it replaces this one."""
        for name, value in self.values.items():
            try:
                check_value(name, value)
            except SecretError as error:
                raise SecretError(f"{label}: {error.message}", hint=error.hint) from None

    def save(self) -> None:
        ensure_dir(self.path.parent, 0o700)
        body = "".join(f"{name}={value}\n" for name, value in sorted(self.values.items()))
        write_atomic(self.path, (HEADER + body).encode(), 0o600)


def readable_values(path: Path) -> dict[str, str]:
    """What can be read of the store at `path`, passing over lines that are not NAME=value: a
    restore, which is how a damaged store is mended, still learns the salt key in use."""
    raw = read_bytes(path, MAX_CONFIG)
    if raw is None:
        return {}
    text = raw.decode("utf-8", errors="replace")
    return {name: value for _, name, value in env_lines(text) if value is not None and NAME.match(name)}


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an environment file as Podman reads them; lines that are not NAME=value
    (which Podman would refuse or take from its own environment) are left out."""
    text = read_regular(path, MAX_CONFIG).decode("utf-8")
    return {name: value for _, name, value in env_lines(text) if value is not None and NAME.match(name)}


# ---- changing the store --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What `set_secret` did."""

    replaced: bool  # another value was there
    compacted: bool  # a JSON document, put on one line


def set_secret(paths: Paths, name: str, value: str, *, stack: Stack | None = None) -> Stored:
    """Store a secret a person provides, under the lock. `stack` (the config in use, None if it
    does not load) says which secrets hold JSON and whether a database may exist: a frozen secret
    never takes a value other than the deployment's while one may."""
    from blueprint import deployed, podman

    checked = check_value(name, value, document=name in json_secrets(stack))
    with lock(paths.lock):
        store = Store.load(paths)
        old = store.values.get(name)
        if old is not None and old != checked and name in FROZEN:
            raise SecretError(f"{name} exists and is not changed: {FROZEN[name]}")
        if old is None and name in FROZEN:
            others = deployed.Deployed.load(paths, stack=stack).others(name, checked)
            if others and deployed.database_may_exist(stack, podman.volume_exists):
                raise SecretError(
                    f"{name}: the deployment in use holds another value ({deployed.where(others)}), which its "
                    f"database was made with; it was not stored: {FROZEN[name]}",
                    hint="`blueprint render` puts the deployment's value back into the store; another is taken "
                    "only where no database made with this one exists",
                )
        store.values[name] = checked
        store.save()
        _removed(paths, name, removed=False)
    return Stored(old is not None and old != checked, checked != value)


def json_secrets(stack: Stack | None) -> frozenset[str]:
    """The secrets that hold a JSON document: the catalog's usual variables for one
    (VERTEXAI_CREDENTIALS), and those the config in use names for one."""
    from blueprint.model.providers import JSON_CREDENTIALS

    named = stack.services if stack else ()
    return JSON_CREDENTIALS | {n for s in named for e in s.secret_env if e.document for n in e.needs}


def remove(paths: Paths, name: str) -> bool:
    """Remove a secret from the store, under the lock; returns whether it was there. The
    containers keep it until the next render (`blueprint apply`)."""
    if name in FROZEN:
        raise SecretError(f"{name} cannot be removed: {FROZEN[name]}")
    if name in GENERATED:
        # The next render would recover it from the containers' environment files, or make another.
        raise SecretError(
            f"{name} cannot be removed: blueprint generates it, and a service needs it",
            hint=f"for a new value: blueprint secrets rotate {name}",
        )
    with lock(paths.lock):
        store = Store.load(paths)
        if store.values.pop(name, None) is None:
            return False
        store.save()
        _removed(paths, name, removed=True)
    return True


def _removed(paths: Paths, name: str, *, removed: bool) -> None:
    """Keep, beside what blueprint wrote, which keys a person removed: the environment files still
    hold them until the next render, and a key found there comes back only if it was not removed
    (after a lost store, every other key does). Where nothing was rendered, no file blueprint wrote
    holds the key, and no manifest is made for it: one says a gateway is installed (ps, up, down).
    The caller holds the lock."""
    manifest = Manifest.load(paths)
    before = set(manifest.removed)
    after = before | {name} if removed else before - {name}
    if after != before and paths.manifest.exists():
        manifest.removed = sorted(after)
        manifest.save()


def rotate(paths: Paths, name: str) -> None:
    """Replace a generated secret with a new random one (never the salt key), under the lock."""
    if name in FROZEN:
        raise SecretError(f"{name} cannot be rotated: {FROZEN[name]}")
    if name not in GENERATED:
        raise SecretError(
            f"{name} is not generated by blueprint", hint=f"set a new value with `blueprint secrets set {name}`"
        )
    with lock(paths.lock):
        store = Store.load(paths)
        store.values[name] = GENERATED[name].make()
        store.save()


def persist(paths: Paths, new: Mapping[str, str]) -> None:
    """Add newly generated or imported secrets to the store; an existing value is never replaced.
    The caller holds the lock (pipeline.render)."""
    if not new:
        return
    store = Store.load(paths)
    for name, value in new.items():
        store.values.setdefault(name, value)
    store.save()


# ---- Podman secrets (secrets.backend = "podman") ----------------------------------------------------


def podman_secrets(stack: Stack, values: Mapping[str, str]) -> dict[str, str]:
    """Podman secret name -> value for every Secret= in the units (plan.plan leaves out those
    whose value is not known yet, as it does their environment lines)."""
    return {e.podman_secret: e.value(values) for s in stack.services for e in s.secret_env if e.known(values)}


def sync_podman(stack: Stack, values: Mapping[str, str], manifest: Manifest) -> list[str]:
    """Create or replace the Podman secrets whose value changed, remove the ones blueprint made
    that no unit uses any more; returns the services to restart.

    The manifest keeps a hash of each value pushed, so an unchanged secret is left alone.
    """
    from blueprint import podman
    from blueprint.files import digest

    wanted = podman_secrets(stack, values)
    pushed = manifest.podman_secrets
    existing = podman.secret_names()
    changed = []
    for name, value in sorted(wanted.items()):
        fingerprint = digest(value.encode())
        if name in existing and pushed.get(name) == fingerprint:
            continue
        podman.create_secret(name, value, replace=name in existing)
        pushed[name] = fingerprint
        changed.append(name)
    for name in sorted(set(pushed) - set(wanted)):
        if name in existing:
            podman.remove_secret(name)
        del pushed[name]
    return [s.unit for s in stack.services if any(e.podman_secret in changed for e in s.secret_env)]
