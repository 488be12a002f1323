"""Secrets: generated once, stored 0600, handed to each container alone, never printed.

The store is one file, $XDG_CONFIG_HOME/blueprint/secrets.env (mode 0600, in a 0700 directory),
holding NAME=value lines: the secrets blueprint generated and the provider keys a person set. Render
only ever adds to it. LiteLLM's salt key encrypts the credentials LiteLLM keeps in PostgreSQL, so
blueprint refuses to change it once it exists (https://docs.litellm.ai/docs/proxy/prod).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from blueprint.errors import SecretError
from blueprint.files import ensure_dir, write_atomic
from blueprint.formats import CONTROL
from blueprint.model.types import GENERATED, Stack
from blueprint.paths import Paths

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

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


def check_value(name: str, value: str) -> str:
    if not NAME.match(name):
        raise SecretError(f"{name!r} is not a valid variable name", hint="use letters, digits and _")
    if not value:
        raise SecretError(f"{name}: the value is empty")
    if CONTROL.search(value):
        raise SecretError(
            f"{name}: the value contains a newline or control character",
            hint="environment files hold one line per variable",
        )
    if value != value.strip():
        raise SecretError(f"{name}: the value starts or ends with whitespace")
    return value


class Store:
    """The secret store file. Values stay in memory; nothing here prints them."""

    def __init__(self, path: Path, values: dict[str, str]) -> None:
        self.path = path
        self.values = values

    @classmethod
    def load(cls, paths: Paths) -> Store:
        path = paths.secret_store
        try:
            info = path.stat()
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path, {})
        if info.st_mode & 0o077:
            # Someone loosened it: tighten it before anything else reads it.
            path.chmod(0o600)
        values = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep or not NAME.match(name):
                raise SecretError(
                    f"{path}:{number}: not a NAME=value line",
                    hint="fix or remove that line (the value is not shown here)",
                )
            values[name] = value
        return cls(path, values)

    def save(self) -> None:
        ensure_dir(self.path.parent, 0o700)
        body = "".join(f"{name}={value}\n" for name, value in sorted(self.values.items()))
        write_atomic(self.path, (HEADER + body).encode(), 0o600)


@dataclass
class Resolution:
    """The value of every secret the stack needs, and what render must add to the store."""

    values: dict[str, str]
    new: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Secrets looked up in the environment (the fast path hashes these).
    from_environment: tuple[str, ...] = ()


def resolve(stack: Stack, store: Store, environ: Mapping[str, str] | None = None) -> Resolution:
    """Find each needed secret in the store, else generate it, else take it from the environment."""
    environ = os.environ if environ is None else environ
    needed = stack.secret_names
    values: dict[str, str] = {}
    new: dict[str, str] = {}
    notes: list[str] = []
    missing: list[tuple[str, str]] = []
    generated: list[str] = []
    recovered: dict[str, str] | None = None  # read only if a secret is missing from the store
    for name in needed:
        if name not in store.values and recovered is None:
            recovered = _from_environment_files(stack)
        if name in store.values:
            values[name] = store.values[name]
            if name not in GENERATED and environ.get(name, values[name]) != values[name]:
                notes.append(
                    f"{name} in your environment differs from the stored one; the stored one is used "
                    f"(`blueprint secrets set {name}` replaces it)"
                )
        elif name in recovered:
            # The store is gone but the containers' files still hold the value: keep it, above
            # all the salt key and the database password, which must not change.
            values[name] = new[name] = recovered[name]
            notes.append(
                f"{name} was missing from {store.path} and was recovered from the containers' environment files"
            )
        elif name in stack.generated_secrets:
            values[name] = new[name] = GENERATED[name].make()
            generated.append(name)
        elif environ.get(name):
            values[name] = new[name] = check_value(name, environ[name])
            notes.append(f"{name} taken from your environment and stored (mode 0600)")
        else:
            missing.append((name, _asked_by(stack, name)))
    if missing:
        name, where = missing[0]
        others = f" (also missing: {', '.join(n for n, _ in missing[1:])})" if len(missing) > 1 else ""
        raise SecretError(
            f"{stack.source}: {where}: {name} is not set{others}",
            hint=f"store it with `blueprint secrets set {name}` (reads stdin or prompts), "
            f"or export {name} before blueprint render",
        )
    if generated:
        notes.append(
            f"generated {', '.join(generated)} into {store.path} (mode 0600; the master key is "
            "how clients and the admin UI log in)"
        )
    return Resolution(values, new, notes, tuple(n for n in needed if n not in GENERATED))


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an environment file as Podman reads it (KEY=VALUE lines, # comments)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _from_environment_files(stack: Stack) -> dict[str, str]:
    found: dict[str, str] = {}
    for service in stack.services:
        if not service.env_file:
            continue
        try:
            written = read_env_file(service.env_file)
        except (FileNotFoundError, UnicodeDecodeError):
            continue
        for env in service.secret_env:
            if env.source and written.get(env.var):
                found.setdefault(env.source, written[env.var])
    return found


def _asked_by(stack: Stack, name: str) -> str:
    return next((e.where for s in stack.services for e in s.secret_env if name in e.needs and e.where), "/")


def set_secret(paths: Paths, name: str, value: str) -> bool:
    """Store a secret a person provides; returns whether it replaced another value."""
    check_value(name, value)
    store = Store.load(paths)
    old = store.values.get(name)
    if old is not None and old != value and name in FROZEN:
        raise SecretError(f"{name} exists and is not changed: {FROZEN[name]}")
    store.values[name] = value
    store.save()
    return old is not None and old != value


def rotate(paths: Paths, name: str) -> None:
    """Replace a generated secret with a new random one (never the salt key)."""
    if name in FROZEN:
        raise SecretError(f"{name} cannot be rotated: {FROZEN[name]}")
    if name not in GENERATED:
        raise SecretError(
            f"{name} is not generated by blueprint", hint=f"set a new value with `blueprint secrets set {name}`"
        )
    store = Store.load(paths)
    store.values[name] = GENERATED[name].make()
    store.save()


def persist(paths: Paths, new: Mapping[str, str]) -> None:
    """Add newly generated or imported secrets to the store; an existing value is never replaced."""
    if not new:
        return
    store = Store.load(paths)
    for name, value in new.items():
        store.values.setdefault(name, value)
    store.save()


@dataclass(frozen=True)
class SecretInfo:
    name: str
    stored: bool
    generated: bool
    used_by: tuple[str, ...]
    where: str


def inventory(stack: Stack | None, store: Store) -> list[SecretInfo]:
    """Which secrets exist and who uses them: names only, never values."""
    used: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for service in stack.services if stack else ():
        for env in service.secret_env:
            for name in env.needs:
                used.setdefault(name, []).append(service.name)
                where.setdefault(name, env.where)
    names = sorted(set(store.values) | set(used))
    return [
        SecretInfo(n, n in store.values, n in GENERATED, tuple(dict.fromkeys(used.get(n, ()))), where.get(n, ""))
        for n in names
    ]


# ---- Podman secrets (secrets.backend = "podman") -------------------------------------------


def podman_secrets(stack: Stack, values: Mapping[str, str]) -> dict[str, str]:
    """Podman secret name -> value for every Secret= in the units."""
    return {e.podman_secret: e.value(values) for s in stack.services for e in s.secret_env}


def sync_podman(stack: Stack, values: Mapping[str, str], manifest) -> list[str]:
    """Create or replace the Podman secrets whose value changed; returns the services to restart.

    The value goes to `podman secret create NAME -` on stdin, never on the command line. The
    manifest keeps a hash of each value pushed, so an unchanged secret is left alone.
    """
    from blueprint import process
    from blueprint.files import digest

    def podman(*args: str, value: str | None = None) -> str:
        hint = 'secrets.backend "podman" needs podman; or use the "file" backend'
        return process.text(["podman", "secret", *args], input=value and value.encode(), hint=hint)

    wanted = podman_secrets(stack, values)
    pushed = manifest.extra.setdefault("podman_secrets", {})
    existing = set(podman("ls", "--format", "{{.Name}}").split())
    changed = []
    for name, value in sorted(wanted.items()):
        fingerprint = digest(value.encode())
        if name in existing and pushed.get(name) == fingerprint:
            continue
        if name in existing:
            podman("rm", name)
        podman("create", name, "-", value=value)
        pushed[name] = fingerprint
        changed.append(name)
    return [s.unit for s in stack.services if any(e.podman_secret in changed for e in s.secret_env)]
