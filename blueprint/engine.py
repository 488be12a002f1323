"""Compare and apply: one walk over the planned files and the disk, several sinks.

Each file is classified (chezmoi's model): create, identical, modified (ours and unedited: safe to
update), conflict (edited by hand since blueprint wrote it, or never written by blueprint) or
orphan (written by blueprint, no longer planned: removed). `render --dry-run`, `diff`, `status`
and `check` are this walk with a writer that writes nothing.

What blueprint wrote is recorded in a manifest under $XDG_STATE_HOME, outside the unit directory
so Quadlet never sees it: each file's hashes and its Role (what it is to systemd), so a file no
longer rendered is still known for what it was. Before writing, the manifest records the hashes
about to be written too, so a render killed half-way leaves files the next render recognises.
"""

from __future__ import annotations

import difflib
import json
import stat
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from blueprint.errors import ConflictError
from blueprint.files import digest, fsync_dir, write_atomic, write_if_unchanged
from blueprint.folders import ensure_dir
from blueprint.model.types import Kind, Role
from blueprint.paths import Paths
from blueprint.plan import PlannedFile
from blueprint.quadlet import RESOURCE, UNIT, podman_name, unit_of
from blueprint.reading import read_bytes

MANIFEST_VERSION = 2


class Status(StrEnum):
    CREATE = "create"
    IDENTICAL = "identical"
    MODIFIED = "modified"
    CONFLICT = "conflict"
    ORPHAN = "orphan"


@dataclass(frozen=True)
class Change:
    path: Path
    status: Status
    planned: PlannedFile | None = None
    current: bytes | None = None
    reason: str = ""
    recorded: Role | None = None  # what the manifest says the file is

    @property
    def role(self) -> Role:
        return self.planned.output.role if self.planned is not None else self.recorded

    @property
    def writes(self) -> bool:
        return self.status in (Status.CREATE, Status.MODIFIED) or (
            self.status is Status.CONFLICT and self.planned is not None
        )


# ---- manifest ---------------------------------------------------------------------------------


@dataclass
class Owned:
    """A file blueprint wrote: what it is, and the hashes of the contents it put there."""

    role: Role
    hashes: list[str]


@dataclass
class Manifest:
    """What blueprint wrote, and what systemd still has to do about it (`extra`)."""

    path: Path
    files: dict[str, Owned] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

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
        return cls(paths.manifest, files, _extra(data))

    def owns(self, path: Path, data: bytes) -> bool:
        owned = self.files.get(str(path))
        return owned is not None and digest(data) in owned.hashes

    def save(self) -> None:
        ensure_dir(self.path.parent, 0o700)
        files = {
            name: {**{k: v for k, v in asdict(owned.role).items() if v not in (None, ())}, "hashes": owned.hashes}
            for name, owned in sorted(self.files.items())
        }
        body = {"version": MANIFEST_VERSION, "files": files, **self.extra}
        write_atomic(self.path, json.dumps(body, indent=1).encode() + b"\n", 0o600)


def _extra(data: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps beside the files, each entry of the shape its reader expects; a
    damaged one is dropped (like a damaged manifest, that costs knowledge, never a traceback).
    `pending` is checked by systemd.Actions.from_json."""
    extra = {k: v for k, v in data.items() if k not in ("files", "version")}
    for key in ("stores", "removed"):  # lists of paths, of secret names
        if key in extra:
            value = extra[key]
            extra[key] = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    secrets = extra.get("podman_secrets")
    if secrets is not None:
        valid = isinstance(secrets, dict)
        extra["podman_secrets"] = {k: v for k, v in secrets.items() if isinstance(v, str)} if valid else {}
    return extra


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


# ---- compare ----------------------------------------------------------------------------------


def roots(paths: Paths) -> tuple[Path, ...]:
    """The folders blueprint writes outputs into (with these XDG directories)."""
    return (paths.unit_dir, paths.systemd_user_dir, paths.env_dir)


def may_touch(path: Path, roots: Iterable[Path]) -> bool:
    """Whether a file the manifest lists is blueprint's to overwrite or remove: an absolute path
    below one of `roots` (engine.roots), with no `..` that would lead out of it. The manifest is a
    file a person or another program can edit; a name it holds is not reason enough to touch a file."""
    return path.is_absolute() and ".." not in path.parts and any(root in path.parents for root in roots)


def compare(planned: Iterable[PlannedFile], manifest: Manifest, roots: Iterable[Path] = ()) -> list[Change]:
    """Classify every planned file and every file blueprint wrote before that it may touch under
    `roots` (may_touch: files it wrote under other folders are left alone, and kept in the
    manifest, so moving XDG_CONFIG_HOME removes nothing and loses no secret)."""
    changes: list[Change] = []
    seen: set[str] = set()
    for file in planned:
        seen.add(str(file.path))
        current = read_bytes(file.path)
        if current is None:
            changes.append(Change(file.path, Status.CREATE, file))
        elif current == file.data and _mode(file.path) == file.mode:
            changes.append(Change(file.path, Status.IDENTICAL, file, current))
        elif current == file.data or manifest.owns(file.path, current):
            changes.append(Change(file.path, Status.MODIFIED, file, current))
        else:
            reason = (
                "edited since blueprint wrote it" if str(file.path) in manifest.files else "not written by blueprint"
            )
            changes.append(Change(file.path, Status.CONFLICT, file, current, reason))
    roots = tuple(roots)
    for name in sorted(set(manifest.files) - seen):
        path, role = Path(name), manifest.files[name].role
        if not may_touch(path, roots):
            continue
        current = read_bytes(path)
        if current is None:
            continue
        if manifest.owns(path, current):
            changes.append(Change(path, Status.ORPHAN, None, current, recorded=role))
        else:
            reason = "edited since blueprint wrote it; no longer rendered"
            changes.append(Change(path, Status.CONFLICT, None, current, reason, recorded=role))
    return changes


def drop_ins(unit_dir: Path) -> list[Path]:
    """The drop-ins a person keeps beside the units (litellm.container.d/*.conf, container.d/*.conf):
    the supported way to change a generated unit, and never touched by blueprint."""
    return sorted(p for p in unit_dir.rglob("*.d/*.conf") if p.is_file()) if unit_dir.is_dir() else []


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def differing(changes: Iterable[Change]) -> list[Change]:
    """The changes a render would make on disk."""
    return [c for c in changes if c.status is not Status.IDENTICAL]


# ---- apply ------------------------------------------------------------------------------------


def _keeper(change: Change) -> str:
    """Where a hand edit of CHANGE's file belongs: a unit's own drop-in folder (Quadlet and systemd
    both read <unit>.d/*.conf beside it), else the config."""
    if change.role is not None and change.role.kind.is_unit:
        return f"a drop-in, which blueprint never touches: {change.path}.d/50-mine.conf"
    return "the config"


def partition(changes: list[Change], *, force: bool = False) -> tuple[list[Change], list[Change]]:
    """The files to write and to remove; refuses (raising) if a file was edited by hand, unless force."""
    conflicts = [c for c in changes if c.status is Status.CONFLICT]
    if conflicts and not force:
        first = conflicts[0]
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise ConflictError(
            f"{first.path}: {first.reason}{more}; nothing was written",
            hint=f"see the changes with `blueprint diff`; keep your edit by moving it into {_keeper(first)}; "
            "or overwrite it with `blueprint render --force`",
            conflicts=conflicts,
        )
    writes = [c for c in changes if c.writes]
    removals = [c for c in changes if c.status is Status.ORPHAN or (c.status is Status.CONFLICT and c.planned is None)]
    return writes, removals


def apply(writes: list[Change], removals: list[Change], manifest: Manifest, roots: Iterable[Path]) -> None:
    """Write and remove files atomically, keeping the manifest true at every step."""
    if not writes and not removals:
        return
    # Journal first: the hashes about to be written count as ours even if we are killed midway.
    for change in writes:
        owned = manifest.files.setdefault(str(change.path), Owned(change.role, []))
        owned.role = change.role
        owned.hashes.append(digest(change.planned.data))
    manifest.save()
    for change in writes:
        file = change.planned
        ensure_dir(file.path.parent, 0o700 if file.output.role.secret else 0o755)
        if not write_if_unchanged(file.path, file.data, file.mode, change.current):
            # A person (who takes no lock) edited it since compare() read it.
            raise ConflictError(
                f"{file.path}: changed while blueprint was writing; it was left as it is",
                hint="run the command again: it shows the edit as a conflict",
            )
    stops = set(roots)
    for change in removals:
        change.path.unlink(missing_ok=True)
        fsync_dir(change.path.parent)
        _remove_empty_parents(change.path.parent, stops)
        manifest.files.pop(str(change.path), None)
    for change in writes:
        manifest.files[str(change.path)] = Owned(change.role, [digest(change.planned.data)])
    manifest.save()


def adopt(changes: Iterable[Change], manifest: Manifest) -> None:
    """Record identical files as ours (e.g. written by an earlier blueprint without a manifest)."""
    for change in changes:
        if change.status is Status.IDENTICAL:
            manifest.files[str(change.path)] = Owned(change.role, [digest(change.planned.data)])


def _remove_empty_parents(directory: Path, roots: set[Path]) -> None:
    """Remove folders a removal left empty (litellm/redis/ ...), up to and never including a root."""
    while directory not in roots and any(root in directory.parents for root in roots):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


# ---- showing changes --------------------------------------------------------------------------


def unified_diff(change: Change) -> str:
    """A unified diff of disk -> plan; secret files show that they differ, never their content."""
    label = str(change.path)
    if change.role.secret:
        return f"--- {label}\n+++ {label}\n(secret file: {change.status}, contents not shown)\n"
    old = _text(change.current)
    new = _text(change.planned.data if change.planned else None)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile=label if change.current is not None else "/dev/null",
        tofile=label if change.planned is not None else "/dev/null",
    )
    text = "".join(lines)
    if not text and change.status is Status.MODIFIED:
        return f"--- {label}\n+++ {label}\n(mode {_mode(change.path):o} -> {change.planned.mode:o})\n"
    return text


def _text(data: bytes | None) -> list[str]:
    if data is None:
        return []
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)
