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

from blueprint import deployed as deployment
from blueprint.deployed import Deployed, database_may_exist, made_by, read_env_records
from blueprint.errors import FileRefused, SecretError
from blueprint.formats import CONTROL
from blueprint.manifest import Manifest
from blueprint.model.environment import GENERATED
from blueprint.model.types import Kind, Stack
from blueprint.paths import Paths
from blueprint.secrets import FROZEN, Store, check_value, json_secrets, misfit, one_line_json


@dataclass
class Resolution:
    """The value of every secret the stack needs that can be had, what render must add to the
    store, and how each was found (for the messages: see notes())."""

    values: dict[str, str]
    new: dict[str, str] = field(default_factory=dict)
    generated: list[str] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)  # taken from the environment
    compacted: list[str] = field(default_factory=list)  # of those, JSON documents put on one line
    recovered: list[tuple[str, Path]] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)  # stored, and the environment says otherwise
    missing: dict[str, str] = field(default_factory=dict)  # name -> the config field that asks for it
    # Of the missing: the environment's value cannot be used (name -> why), or is not taken
    # because a person removed the key with `secrets rm`.
    unusable: dict[str, str] = field(default_factory=dict)
    held_out: list[str] = field(default_factory=list)
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
            one_line = "; a JSON document, put on one line" if name in self.compacted else ""
            said.append(
                f"{name} {'taken' if done else 'would be taken'} from your environment and stored (mode 0600{one_line})"
            )
        for name, source in self.recovered:
            said.append(f"{name} is missing from {store} and {'was' if done else 'would be'} recovered from {source}")
        for name in self.differs:
            said.append(
                f"{name} in your environment differs from the stored one; the stored one is used "
                f"(`blueprint secrets set {name}` replaces it)"
            )
        return said

    def state(self, name: str) -> str:
        """How a secret the stack needs stands, in a word (`blueprint secrets list`)."""
        if name in self.missing:
            return "MISSING"
        if name in self.imported:
            return "from env"  # the next render takes it from the environment
        if name in dict(self.recovered):
            return "recover"  # the next render recovers it from a file blueprint wrote
        if name in self.generated:
            return "to make"  # the next render generates it
        return "generated" if name in GENERATED else "set"

    def warnings(self) -> list[str]:
        """One line per secret that is not set yet, with why and the command that sets it."""
        said = []
        for name, where in self.missing.items():
            if name in self.unusable:
                why = f"{name} in your environment cannot be used ({self.unusable[name]}), so it is not set"
            elif name in self.held_out:
                why = f"{name} is not set: removed with `blueprint secrets rm`, it is not taken from your environment"
            else:
                why = f"{name} is not set"
            said.append(
                f"{why} ({where}): what needs it fails until it is; "
                f"store it with `blueprint secrets set {name}`, then `blueprint apply`"
            )
        return said

    def refuse_missing(self, source: str) -> None:
        """For --strict: a secret that is not set is an error."""
        if self.missing:
            (name, where), *others = self.missing.items()
            also = f" (also missing: {', '.join(n for n, _ in others)})" if others else ""
            why, export = "is not set", f", or export {name} before blueprint render"
            if name in self.unusable:
                why = f"in your environment cannot be used ({self.unusable[name]})"
            elif name in self.held_out:
                why, export = "is not set (removed with `blueprint secrets rm`)", ""
            raise SecretError(
                f"{source}: {where}: {name} {why}{also}",
                hint=f"store it with `blueprint secrets set {name}` (reads stdin or prompts){export}",
            )


def resolve(
    stack: Stack,
    store: Store,
    environ: Mapping[str, str] | None = None,
    *,
    written: Iterable[Path] = (),
    volume_exists=None,
    removed: Iterable[str] = (),
    deployed: Deployed | None = None,
) -> Resolution:
    """Find each needed secret in the store, else in the files blueprint wrote (`written`: the
    environment files and earlier stores it knows of), else generate it, else take it from the
    environment; what is in none of them is `missing` (a provider key to be set later).
    `volume_exists(name)` says whether a podman volume holds data (None: do not ask, and refuse
    nothing); `removed`, the keys a person took out with `secrets rm`, which stay out; `deployed`,
    what the deployment holds, which a frozen secret must match while its database may exist."""
    environ = os.environ if environ is None else environ
    found = Resolution({}, store=store.path)
    gone = set(removed)
    documents = json_secrets(stack)
    recovered: dict[str, tuple[str, Path]] | None = None  # read only if a secret is missing
    for name in stack.secret_names:
        if name not in store.values and recovered is None:
            recovered = {
                n: v for n, v in _recover(stack, [p for p in written if p != store.path]).items() if n not in gone
            }
        if name in store.values:
            found.values[name] = store.values[name]
            if name not in GENERATED and _differs(environ.get(name), store.values[name], name in documents):
                found.differs.append(name)
        elif name in recovered:
            value, source = recovered[name]
            found.values[name] = found.new[name] = value
            found.recovered.append((name, source))
        elif name in stack.generated_secrets:
            _refuse_to_replace(stack, store, name, volume_exists)
            found.values[name] = found.new[name] = GENERATED[name].make()
            found.generated.append(name)
        elif environ.get(name) and name not in gone:
            _take(found, stack, name, environ[name], document=name in documents)
        else:
            found.missing[name] = asked_by(stack, name)
            if environ.get(name):
                found.held_out.append(name)
    if deployed is not None and volume_exists is not None:
        _keep_frozen(stack, found, deployed, volume_exists)
    found.from_environment = tuple(n for n in stack.secret_names if n not in GENERATED)
    return found


def resolve_here(
    stack: Stack, paths: Paths, environ: Mapping[str, str], manifest: Manifest, *, volume_exists=None
) -> Resolution:
    """resolve() with what this machine holds: the store, the files the manifest recorded (and
    earlier stores), the keys removed, the deployment."""
    recorded = [(Path(name), owned.role.kind) for name, owned in manifest.files.items()]
    return resolve(
        stack,
        Store.load(paths),
        environ,
        written=written_files(stack, recorded, manifest.stores),
        volume_exists=volume_exists,
        removed=manifest.removed,
        deployed=Deployed.load(paths, manifest, stack),
    )


def _take(found: Resolution, stack: Stack, name: str, raw: str, *, document: bool) -> None:
    """A key from the environment, a convenience: one that cannot be used is left out, as if not
    set, and said (--strict refuses it), instead of stopping the render."""
    try:
        value = check_value(name, raw, document=document)
    except SecretError as error:
        found.unusable[name] = error.message.removeprefix(f"{name}: ")
        found.missing[name] = asked_by(stack, name)
        return
    found.values[name] = found.new[name] = value
    found.imported.append(name)
    if value != raw:
        found.compacted.append(name)


def _differs(given: str | None, stored: str, document: bool) -> bool:
    """Whether the environment says another value than the store (a JSON document compared as
    it is stored, on one line)."""
    if given is None:
        return False
    if document:
        try:
            given = one_line_json("", given)
        except SecretError:
            return True
    return given != stored


def _keep_frozen(stack: Stack, found: Resolution, deployed: Deployed, volume_exists) -> None:
    """A frozen secret with another value than the deployment's is refused while a database made
    with the deployment's may exist: it would lock LiteLLM out of it, or out of what it holds."""
    for name in FROZEN:
        value = found.values.get(name)
        others = deployed.others(name, value) if value is not None else []
        if others and database_may_exist(stack, volume_exists):
            source, held = dict(found.recovered).get(name, found.store), deployment.where(others)
            raise SecretError(
                f"{source}: {name} differs from the one the deployment holds ({held}): {FROZEN[name]}",
                hint=f"remove {name} from {source} to have the deployment's put back; only if the database now "
                f"needs this one (ALTER ROLE, a database restored with its backup), remove {held} first",
            )


def _recover(stack: Stack, written: list[Path]) -> dict[str, tuple[str, Path]]:
    """Secret name -> (value, file) from the files blueprint wrote: earlier stores first, then the
    containers' environment files. There a secret comes back only from the variable of its own
    service made from it (DATABASE_URL gives back POSTGRES_PASSWORD it was made from): never from
    another service's variable of the same name, nor from one made from another secret."""
    found: dict[str, tuple[str, Path]] = {}
    for path in written:
        try:
            if path.name == "secrets.env":
                for name, value in Store.read(path).values.items():
                    found.setdefault(name, (value, path))
                continue
            entries = dict.fromkeys(e for s in stack.services if s.env_file_name == path.name for e in s.secret_env)
            variables = read_env_records(path) if entries else {}
        except (OSError, UnicodeDecodeError, SecretError, FileRefused):  # what cannot be read tells nothing
            continue
        for env in entries:
            value, recorded = variables.get(env.var, (None, None))
            if value is None or not made_by(env, recorded):
                continue
            for name, secret in env.recover(value).items():
                if not misfit(name, secret) and not CONTROL.search(secret):
                    found.setdefault(name, (secret, path))
    return found


def _refuse_to_replace(stack: Stack, store: Store, name: str, volume_exists) -> None:
    """A frozen secret is generated only for a database that does not exist yet."""
    if name not in FROZEN or stack.database is None or volume_exists is None:
        return
    volume = stack.database.volume
    if volume_exists(volume.podman_name):
        raise SecretError(
            f"{name} is in neither {store.path} nor any file blueprint wrote, but the volume "
            f"{volume.podman_name} holds a database made with it: a new one would lock LiteLLM out "
            f"({FROZEN[name]})",
            hint=f"bring the store back with `blueprint restore config`, or set the value in use with "
            f"`blueprint secrets set {name}`",
        )


def asked_by(stack: Stack, name: str) -> str:
    """The config field that asks for a secret ("/" for one every stack needs)."""
    return next((e.where for s in stack.services for e in s.secret_env if name in e.needs and e.where), "/")


def written_files(stack: Stack, recorded: Iterable[tuple[Path, Kind]], stores: Iterable[str]) -> list[Path]:
    """Every file a secret may be recovered from: the stack's environment files, those the
    manifest recorded (at any earlier location), and earlier stores."""
    files = [o.path for o in stack.outputs if o.role.secret]
    files += [path for path, kind in recorded if kind is Kind.ENV]
    return list(dict.fromkeys([*map(Path, stores), *files]))


@dataclass(frozen=True)
class SecretInfo:
    name: str
    state: str  # set, generated, or how the next render finds it (Resolution.state)
    used_by: tuple[str, ...]
    where: str


def inventory(stack: Stack | None, store: Store, found: Resolution | None) -> list[SecretInfo]:
    """Which secrets exist, how each stands and who uses them: names only, never values. The
    state of a secret the stack needs is the resolution's, which render and status go by."""
    used: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for service in stack.services if stack else ():
        for env in service.secret_env:
            for name in env.needs:
                used.setdefault(name, []).append(service.name)
                where.setdefault(name, env.where)
    rows = []
    for name in sorted(set(store.values) | set(used)):
        if found is not None and name in used:
            state = found.state(name)
        else:
            state = ("generated" if name in GENERATED else "set") if name in store.values else "MISSING"
        rows.append(SecretInfo(name, state, tuple(dict.fromkeys(used.get(name, ()))), where.get(name, "")))
    return rows
