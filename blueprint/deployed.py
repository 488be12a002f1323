"""What the deployment in use holds of its secrets: the environment files blueprint wrote, each
variable with the stored secrets it was made from, and the Podman secrets it pushed.

Two rules read it. A secret is recovered only from a variable made from that very secret (a local
database's URL gives back POSTGRES_PASSWORD, never a managed database's URL). And a frozen secret
(secrets.FROZEN) never takes a value the deployment does not hold, in any variable made from it,
while its database may exist, whichever way the value comes in: a render, `secrets set`,
`restore config`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from blueprint.errors import FileRefused
from blueprint.files import digest
from blueprint.formats import env_lines
from blueprint.manifest import Manifest
from blueprint.model.environment import GENERATED, SecretEnv
from blueprint.model.types import Kind, Stack
from blueprint.paths import Paths
from blueprint.reading import MAX_CONFIG, read_regular
from blueprint.secrets import FROZEN, NAME

# The line above each variable of an environment file blueprint writes: the secrets its value
# was made from.
_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
MADE_FROM = re.compile(rf"# ({_WORD}): made from ({_WORD}(?:, {_WORD})*)")


def made_from(env: SecretEnv) -> str:
    """The record written above `env`'s line."""
    return f"# {env.var}: made from {', '.join(env.needs)}"


def read_env_records(path: Path) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """Each variable of an environment file blueprint wrote: its value, and the secrets its record
    says it was made from (None in a file written before blueprint kept that record)."""
    text = read_regular(path, MAX_CONFIG).decode("utf-8")
    records = {}
    for line in text.split("\n"):
        record = MADE_FROM.fullmatch(line.removesuffix("\r"))
        if record:
            records[record[1]] = tuple(record[2].split(", "))
    return {
        name: (value, records.get(name)) for _, name, value in env_lines(text) if value is not None and NAME.match(name)
    }


def made_by(env: SecretEnv, recorded: tuple[str, ...] | None) -> bool:
    """Whether a variable of a file blueprint wrote was made from the secrets `env` makes it of.
    A file from before the record is believed where a mix-up is least likely: for a copy of the
    secret of the variable's own name, or a value made only of secrets blueprint generates (a
    managed database's URL is neither)."""
    if recorded is not None:
        return recorded == env.needs
    return env.needs == (env.var,) or all(name in GENERATED for name in env.needs)


def database_may_exist(stack: Stack | None, volume_exists: Callable[[str], bool]) -> bool:
    """Whether a database made with the frozen secrets may exist: the PostgreSQL volume holds
    data, or the database is a managed one, which blueprint cannot look into. Without a stack (a
    config that does not load) there is no telling: it may."""
    if stack is None:
        return True
    if stack.database is not None:
        return volume_exists(stack.database.volume.podman_name)
    return any(e.var == "DATABASE_URL" for s in stack.services for e in s.secret_env)


def frozen_in(var: str, value: str, recorded: tuple[str, ...] | None, entries: list[SecretEnv]) -> dict[str, str]:
    """The frozen secrets a variable of a file blueprint wrote was made from, with their values:
    recovered as resolution recovers a secret, with the SecretEnv (of `entries`, the stack's for
    that file) made from them. A variable the stack makes otherwise (its config changed since, or
    does not load) is read by its record alone, in the two shapes blueprint makes of one secret: a
    copy, or a URL holding it as its password (the local database's DATABASE_URL)."""
    for env in entries:
        if env.var == var and made_by(env, recorded) and (found := env.recover(value)):
            return {name: secret for name, secret in found.items() if name in FROZEN}
    needs = recorded if recorded is not None else (var,)
    if len(needs) != 1 or needs[0] not in FROZEN:
        return {}
    if var == needs[0] or "://" not in value:
        return {needs[0]: value}
    try:
        password = urlsplit(value).password
    except ValueError:
        return {}
    return {needs[0]: unquote(password)} if password is not None else {}


@dataclass(frozen=True)
class Held:
    """One place the deployment holds a frozen secret: the value's digest, and where it is."""

    digest: str
    where: str  # a file, or "the Podman secret blueprint-NAME"
    podman_secret: str | None = None


@dataclass
class Deployed:
    """The frozen secrets as the deployment holds them, and the values a person chose over them
    (`restore config --replace-salt-key`), by digest."""

    held: dict[str, list[Held]] = field(default_factory=dict)
    chosen: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: Paths, manifest: Manifest | None = None, stack: Stack | None = None) -> Deployed:
        """What the deployment holds: every variable of its environment files made from a frozen
        secret (DATABASE_URL holds POSTGRES_PASSWORD as much as POSTGRES_PASSWORD does), read
        with the SecretEnv `stack` makes it with where there is one (frozen_in)."""
        manifest = manifest or Manifest.load(paths)
        files = {Path(name) for name, owned in manifest.files.items() if owned.role.kind is Kind.ENV}
        files |= set(paths.env_dir.glob("*.env")) if paths.env_dir.is_dir() else set()
        held: dict[str, list[Held]] = {}
        for path in sorted(files):
            try:
                variables = read_env_records(path)
            except (OSError, UnicodeDecodeError, FileRefused):  # what cannot be read holds nothing
                continue
            entries = [e for s in stack.services if s.env_file_name == path.name for e in s.secret_env] if stack else []
            for var, (value, recorded) in variables.items():
                for name, secret in frozen_in(var, value, recorded, entries).items():
                    held.setdefault(name, []).append(Held(digest(secret.encode()), str(path)))
        pushed = manifest.podman_secrets
        for name in FROZEN:
            secret = f"blueprint-{name}"
            if pushed.get(secret):
                held.setdefault(name, []).append(Held(pushed[secret], f"the Podman secret {secret}", secret))
        return cls(held, dict(manifest.chosen))

    def others(self, name: str, value: str) -> list[Held]:
        """Where the deployment holds another value of `name` than `value` (none where a person
        chose `value` over it). A Podman secret removed since it was pushed holds nothing."""
        mine = digest(value.encode())
        if self.chosen.get(name) == mine:
            return []
        found = [h for h in self.held.get(name, ()) if h.digest != mine]
        if any(h.podman_secret for h in found):
            from blueprint import podman

            existing = podman.secret_names() if podman.installed() else set()
            found = [h for h in found if h.podman_secret is None or h.podman_secret in existing]
        return found


def where(held: list[Held]) -> str:
    return ", ".join(h.where for h in held)


def choose(paths: Paths, name: str, value: str) -> None:
    """Record that a person chose `value` for the frozen secret `name` over the deployment's (a
    restore with the database that goes with it): render then deploys it. Where the deployment
    holds no other (a machine never rendered), there is nothing to choose over, and no manifest is
    made for it: one says a gateway is installed (ps, up, down). The caller holds the lock."""
    manifest = Manifest.load(paths)
    if not Deployed.load(paths, manifest).others(name, value):
        return
    manifest.chosen[name] = digest(value.encode())
    manifest.save()
