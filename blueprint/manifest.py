"""The manifest: what blueprint wrote (each file's hashes and Role) and what it keeps between
runs, each in a typed field that only this module reads from and writes to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blueprint.actions import Actions
from blueprint.files import digest, write_atomic
from blueprint.folders import ensure_dir
from blueprint.model.types import Kind, Role
from blueprint.paths import Paths
from blueprint.quadlet import RESOURCE, UNIT, podman_name, unit_of
from blueprint.reading import read_bytes

VERSION = 2
# The fields beside the files, in the order they are written; each is left out while empty.
FIELDS = ("stores", "podman_secrets", "pending", "removed", "chosen")


@dataclass
class Owned:
    """A file blueprint wrote: what it is, and the hashes of the contents it put there."""

    role: Role
    hashes: list[str]


@dataclass
class Manifest:
    """What blueprint wrote, and what it keeps between runs for the modules named at each field.

    It lives under $XDG_STATE_HOME, a file a person or another program can edit: what a field holds
    out of its shape is left out (like a damaged manifest, that costs knowledge, never a
    traceback), and a key this blueprint does not know (one a later blueprint wrote) is kept.
    """

    path: Path
    files: dict[str, Owned] = field(default_factory=dict)
    # What systemd still has to do for files written without a reload (pipeline.write).
    pending: Actions = field(default_factory=Actions)
    # Every secret store a render used, which resolution.py recovers secrets from (pipeline.write).
    stores: list[str] = field(default_factory=list)
    # The keys a person took out with `secrets rm`, which are not recovered (secrets.remove).
    removed: list[str] = field(default_factory=list)
    # Podman secret -> the digest of the value pushed to it (secrets.sync_podman).
    podman_secrets: dict[str, str] = field(default_factory=dict)
    # Frozen secret -> the digest of the value a person chose over the deployment's (deployed.choose).
    chosen: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)  # a later blueprint's keys, written back as they were

    @classmethod
    def load(cls, paths: Paths) -> Manifest:
        raw = read_bytes(paths.manifest)
        if raw is None:
            return cls(paths.manifest)
        try:
            data = json.loads(raw)
            entries = data["files"].items()
        except (ValueError, AttributeError, TypeError, KeyError):
            # A damaged manifest only costs us the knowledge of what we wrote: every file then
            # counts as not ours (conflict), which is the safe side.
            return cls(paths.manifest)
        files = {}
        for name, entry in entries:
            try:
                files[name] = _owned(name, entry, data.get("version"))
            except (ValueError, AttributeError, TypeError, KeyError):
                # Likewise one damaged entry, or one naming a unit systemctl would read as an
                # option (restarts: ["-H", "root@host"]): that file counts as not ours, so it is
                # neither overwritten without --force nor removed, and no systemctl is run for it.
                continue
        return cls(
            paths.manifest,
            files,
            pending=Actions.from_json(data.get("pending")),
            stores=_strings(data.get("stores")),
            removed=_strings(data.get("removed")),
            podman_secrets=_digests(data.get("podman_secrets")),
            chosen=_digests(data.get("chosen")),
            unknown={k: v for k, v in data.items() if k not in ("version", "files", *FIELDS)},
        )

    def owns(self, path: Path, data: bytes) -> bool:
        owned = self.files.get(str(path))
        return owned is not None and digest(data) in owned.hashes

    def services(self) -> list[str]:
        """The services that run from the unit files it lists (a template's: its instances), by name."""
        return sorted({unit for o in self.files.values() if o.role.kind is Kind.CONTAINER for unit in o.role.restarts})

    def units(self, *kinds: Kind) -> list[str]:
        """The units its files of these kinds are (a timer; what Quadlet makes of a network or a
        volume), by name."""
        return sorted({o.role.unit for o in self.files.values() if o.role.kind in kinds and o.role.unit})

    def save(self) -> None:
        ensure_dir(self.path.parent, 0o700)
        files = {
            name: {**{k: v for k, v in asdict(owned.role).items() if v not in (None, ())}, "hashes": owned.hashes}
            for name, owned in sorted(self.files.items())
        }
        kept = {name: getattr(self, name) for name in FIELDS} | {"pending": self.pending.to_json()}
        body = {"version": VERSION, "files": files, **{k: v for k, v in kept.items() if v}, **self.unknown}
        write_atomic(self.path, json.dumps(body, indent=1).encode() + b"\n", 0o600)


def _strings(value: Any) -> list[str]:
    """A list of paths or of secret names."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _digests(value: Any) -> dict[str, str]:
    """Secret names to the digests of their values."""
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def _owned(name: str, entry: Any, version: Any) -> Owned:
    """An entry of the manifest; ValueError if it is damaged, or names a unit or a podman
    volume that blueprint could not have written (they reach systemctl and podman commands)."""
    if version == 1:
        return Owned(_checked(_role_of_version_1(name)), [str(h) for h in entry])
    restarts = entry.get("restarts") or ()
    restarts = (restarts,) if isinstance(restarts, str) else tuple(restarts)
    role = Role(Kind(entry["kind"]), entry.get("unit"), restarts, entry.get("resource"))
    return Owned(_checked(role), [str(h) for h in entry["hashes"]])


def _checked(role: Role) -> Role:
    units = [*role.restarts, *([role.unit] if role.unit is not None else [])]
    if not all(isinstance(u, str) and UNIT.match(u) for u in units):
        raise ValueError(f"not a unit name: {units!r}")
    if role.resource is not None and not (isinstance(role.resource, str) and RESOURCE.match(role.resource)):
        raise ValueError(f"not a podman name: {role.resource!r}")
    return role


def _role_of_version_1(name: str) -> Role:
    """Manifests of blueprint 0.1 kept hashes only: the role follows from the name there."""
    path = Path(name)
    if path.suffix == ".container":
        return Role(Kind.CONTAINER, unit_of(path.name), restarts=(unit_of(path.name),))
    if path.suffix in (".volume", ".network"):
        return Role(Kind(path.suffix[1:]), unit_of(path.name), resource=podman_name(path.name))
    if path.suffix in (".service", ".timer"):
        return Role(Kind(path.suffix[1:]), path.name)
    return Role({".env": Kind.ENV, ".caddy": Kind.SITE}.get(path.suffix, Kind.MOUNTED))
