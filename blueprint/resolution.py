"""Which value each secret a stack needs takes: the store's, one recovered from a file blueprint
wrote, a newly generated one, one taken from the environment, or none yet (a key to set later).

A secret that exists anywhere blueprint wrote is recovered, never made anew: the salt key encrypts
what LiteLLM keeps in PostgreSQL, and the database keeps the password it was created with.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from blueprint.errors import FileRefused, SecretError
from blueprint.formats import CONTROL
from blueprint.model.types import GENERATED, Kind, SecretEnv, Stack
from blueprint.secrets import FROZEN, Store, check_value, misfit, read_env_file


@dataclass
class Resolution:
    """The value of every secret the stack needs that can be had, what render must add to the
    store, and how each was found (for the messages: see notes())."""

    values: dict[str, str]
    new: dict[str, str] = field(default_factory=dict)
    generated: list[str] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)  # taken from the environment
    recovered: list[tuple[str, Path]] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)  # stored, and the environment says otherwise
    missing: dict[str, str] = field(default_factory=dict)  # name -> the config field that asks for it
    # Secrets looked up in the environment (the fast path hashes these).
    from_environment: tuple[str, ...] = ()
    store: Path | None = None

    def notes(self, *, done: bool) -> list[str]:
        """What was found and made, said as done (a render) or as what a render would do."""
        store = self.store
        said = []
        if self.generated:
            made = "generated" if done else "would generate"
            said.append(
                f"{made} {', '.join(self.generated)} into {store} (mode 0600; the master key is how clients "
                "and the admin UI log in)"
            )
        for name in self.imported:
            said.append(f"{name} {'taken' if done else 'would be taken'} from your environment and stored (mode 0600)")
        for name, source in self.recovered:
            said.append(f"{name} is missing from {store} and {'was' if done else 'would be'} recovered from {source}")
        for name in self.differs:
            said.append(
                f"{name} in your environment differs from the stored one; the stored one is used "
                f"(`blueprint secrets set {name}` replaces it)"
            )
        return said

    def warnings(self) -> list[str]:
        """One line per secret that is not set yet, with the command that sets it."""
        return [
            f"{name} is not set ({where}): what needs it fails until it is; "
            f"store it with `blueprint secrets set {name}`, then `blueprint apply`"
            for name, where in self.missing.items()
        ]

    def refuse_missing(self, source: str) -> None:
        """For --strict: a secret that is not set is an error."""
        if self.missing:
            (name, where), *others = self.missing.items()
            also = f" (also missing: {', '.join(n for n, _ in others)})" if others else ""
            raise SecretError(
                f"{source}: {where}: {name} is not set{also}",
                hint=f"store it with `blueprint secrets set {name}` (reads stdin or prompts), "
                f"or export {name} before blueprint render",
            )


def resolve(
    stack: Stack,
    store: Store,
    environ: Mapping[str, str] | None = None,
    *,
    written: Iterable[Path] = (),
    volume_exists=None,
    removed: Iterable[str] = (),
) -> Resolution:
    """Find each needed secret in the store, else in the files blueprint wrote (`written`: the
    environment files and earlier stores it knows of), else generate it, else take it from the
    environment; what is in none of them is `missing` (a provider key to be set later).
    `volume_exists(name)` says whether a podman volume holds data; `removed`, the keys a person
    took out with `secrets rm`, which stay out."""
    environ = os.environ if environ is None else environ
    found = Resolution({}, store=store.path)
    recovered: dict[str, tuple[str, Path]] | None = None  # read only if a secret is missing
    for name in stack.secret_names:
        if name not in store.values and recovered is None:
            gone = set(removed)
            recovered = {
                n: v for n, v in _recover(stack, [p for p in written if p != store.path]).items() if n not in gone
            }
        if name in store.values:
            found.values[name] = store.values[name]
            if name not in GENERATED and environ.get(name, store.values[name]) != store.values[name]:
                found.differs.append(name)
        elif name in recovered:
            value, source = recovered[name]
            found.values[name] = found.new[name] = value
            found.recovered.append((name, source))
        elif name in stack.generated_secrets:
            _refuse_to_replace(stack, store, name, volume_exists)
            found.values[name] = found.new[name] = GENERATED[name].make()
            found.generated.append(name)
        elif environ.get(name):
            found.values[name] = found.new[name] = check_value(name, environ[name])
            found.imported.append(name)
        else:
            found.missing[name] = _asked_by(stack, name)
    found.from_environment = tuple(n for n in stack.secret_names if n not in GENERATED)
    return found


def _recover(stack: Stack, written: list[Path]) -> dict[str, tuple[str, Path]]:
    """Secret name -> (value, file) from the files blueprint wrote: earlier stores first, then the
    containers' environment files (a variable built from a secret, like DATABASE_URL, gives it back)."""
    by_var: dict[str, list[SecretEnv]] = {}
    for service in stack.services:
        for env in service.secret_env:
            by_var.setdefault(env.var, []).append(env)
    found: dict[str, tuple[str, Path]] = {}
    for path in written:
        try:
            if path.name == "secrets.env":
                variables = Store.read(path).values
                for name, value in variables.items():
                    found.setdefault(name, (value, path))
                continue
            variables = read_env_file(path)
        except (OSError, UnicodeDecodeError, SecretError, FileRefused):  # what cannot be read tells nothing
            continue
        for var, value in variables.items():
            for env in by_var.get(var, ()):
                for name, secret in env.recover(value).items():
                    if not misfit(name, secret) and not CONTROL.search(secret):
                        found.setdefault(name, (secret, path))
    return found


def _refuse_to_replace(stack: Stack, store: Store, name: str, volume_exists) -> None:
    """A frozen secret is generated only for a database that does not exist yet."""
    if name not in FROZEN or stack.database is None or volume_exists is None:
        return
    volume = next(v for v in stack.volumes if v.name == "litellm-postgres")
    if volume_exists(volume.podman_name):
        raise SecretError(
            f"{name} is in neither {store.path} nor any file blueprint wrote, but the volume "
            f"{volume.podman_name} holds a database made with it: a new one would lock LiteLLM out "
            f"({FROZEN[name]})",
            hint=f"bring the store back with `blueprint restore config`, or set the value in use with "
            f"`blueprint secrets set {name}`",
        )


def _asked_by(stack: Stack, name: str) -> str:
    return next((e.where for s in stack.services for e in s.secret_env if name in e.needs and e.where), "/")


def written_files(stack: Stack, recorded: Iterable[tuple[Path, Kind]], stores: Iterable[str]) -> list[Path]:
    """Every file a secret may be recovered from: the stack's environment files, those the
    manifest recorded (at any earlier location), and earlier stores."""
    files = [o.path for o in stack.outputs if o.role.secret]
    files += [path for path, kind in recorded if kind is Kind.ENV]
    return list(dict.fromkeys([*map(Path, stores), *files]))


